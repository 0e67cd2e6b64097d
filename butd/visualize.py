"""`python -m butd.visualize ckpt_path=... image_id=... question=...`: where the model looked.

Draws the image (from `image_dir`, a COCO image folder) or a blank canvas of the image's size,
with every box of the bottom-up features outlined and shaded by its attention weight, and the
top answers in the title. `questions=[...]` gives one panel per question. Writes a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from omegaconf import DictConfig

from butd.config.entry import entry_point  # noqa: E402
from butd.errors import ConfigError, UserError  # noqa: E402
from butd.evaluation.inference import (  # noqa: E402
    Answer,
    ImageRecord,
    answer,
    find_image,
    image_id_arg,
    open_checkpoint,
)
from butd.models import BUTDModel  # noqa: E402
from butd.preparation.build import prepared_cache  # noqa: E402

CMAP = "YlOrRd"  # faint yellow for little attention, dark red for the most
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def find_image_file(image_dir: str | Path, image_id: int) -> Path:
    """The COCO file of an image: `COCO_<split>_<12-digit id>.jpg` (2014/2015) or `<12-digit id>.jpg`."""
    folder = Path(image_dir)
    if not folder.is_dir():
        raise ConfigError(f"image_dir={folder}: no such folder")
    pattern = f"*{image_id:012d}.*"
    found = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise UserError(
            f"no image file for image {image_id} in image_dir={folder} (looked for {pattern}, e.g. "
            f"COCO_val2014_{image_id:012d}.jpg); leave image_dir out to draw on a blank canvas"
        )
    return found[0]


def _title(result: Answer, top_k: int, width: int = 48) -> str:
    question = result.question if len(result.question) <= width else result.question[: width - 1] + "…"
    answers = "   ".join(f"{a} {p:.2f}" for a, p in result.top[:top_k])
    lines = [question, answers]
    if result.unknown_words:
        lines.append(f"(unknown, left out: {', '.join(result.unknown_words)})")
    return "\n".join(lines)


def draw(
    ax: plt.Axes, image: ImageRecord, result: Answer, *, pixels: np.ndarray | None = None, top_k: int = 3
) -> None:
    """One panel: the image or a blank canvas, boxes shaded by attention, weakest drawn first."""
    w, h = image.width, image.height
    if pixels is not None:
        ax.imshow(pixels, extent=(0, w, h, 0))
    else:
        ax.add_patch(Rectangle((0, 0), w, h, facecolor="0.93", edgecolor="0.6"))
    weights = result.attention
    scale = weights / weights.max() if weights.max() > 0 else weights
    cmap = plt.get_cmap(CMAP)
    for k in np.argsort(weights):
        x1, y1, x2, y2 = (float(c) for c in image.boxes[k])
        s = float(scale[k])
        color = cmap(s)
        box = (x1, y1), x2 - x1, y2 - y1
        ax.add_patch(Rectangle(*box, facecolor=color, alpha=0.5 * s, linewidth=0))
        ax.add_patch(Rectangle(*box, fill=False, edgecolor=color, linewidth=0.6 + 2.4 * s))
    for k in np.argsort(weights)[::-1][:3]:  # the strongest boxes get their weight written
        x1, y1 = (float(c) for c in image.boxes[k][:2])
        frame = {"facecolor": "white", "edgecolor": cmap(float(scale[k])), "alpha": 0.85, "pad": 1.2}
        ax.text(x1 + 3, y1 + 3, f"{weights[k]:.2f}", va="top", fontsize=7, bbox=frame)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(_title(result, top_k), fontsize=9)


def render(
    image: ImageRecord,
    results: Sequence[Answer],
    out: str | Path,
    *,
    pixels: np.ndarray | None = None,
    top_k: int = 3,
) -> Path:
    """A grid of panels (up to 3 per row) with a shared attention colour bar, saved as PNG."""
    n = len(results)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    panel_w = 4.2
    panel_h = panel_w * image.height / image.width + 0.9
    fig, axes = plt.subplots(
        rows, cols, figsize=(panel_w * cols + 0.8, panel_h * rows), squeeze=False, layout="constrained"
    )
    for ax, result in zip(axes.flat, results, strict=False):
        draw(ax, image, result, pixels=pixels, top_k=top_k)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap=CMAP), ax=axes, shrink=0.8)
    bar.set_label("attention / largest attention")
    fig.suptitle(
        f"image {image.image_id} ({image.split}, {int(image.width)}x{int(image.height)})", fontsize=10
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def visualize(cfg: DictConfig) -> Path:
    """Answer the question(s) about the image and write the PNG; returns its path."""
    questions = [str(q) for q in (cfg.get("questions") or [])]
    if cfg.get("question") is not None:
        questions.insert(0, str(cfg.question))
    if not questions:
        raise ConfigError('give question="..." or questions=["...","..."]')
    image_id = image_id_arg(cfg.image_id)
    top_k = cfg.top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} is invalid; expected an integer >= 1 (how many answers to show)")
    ckpt, data = open_checkpoint(cfg)
    info = prepared_cache(data)
    if not isinstance(ckpt.model, BUTDModel):
        raise ConfigError(
            f"{ckpt.path} holds a {ckpt.module.model_cfg.name} model, which has no attention to show"
        )
    image = find_image(info, image_id)
    pixels = plt.imread(find_image_file(cfg.image_dir, image.image_id)) if cfg.get("image_dir") else None
    results = [answer(ckpt, image, q, top_k=top_k) for q in questions]
    out = cfg.get("out") or Path(cfg.paths.output_dir) / f"attention_{image.image_id}.png"
    return render(image, results, out, pixels=pixels, top_k=top_k)


@entry_point("visualize")
def main(cfg: DictConfig) -> None:
    path = visualize(cfg)
    print(f"attention picture written to {path}")


if __name__ == "__main__":
    main()
