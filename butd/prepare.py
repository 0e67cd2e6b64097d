"""`python -m butd.prepare data=NAME`: turn the raw VQA files into the processed cache.

Idempotent: with a complete cache that matches the config it does nothing.
"""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from butd.cache.load import CacheInfo
from butd.config.data import DataConfig
from butd.config.entry import entry_point
from butd.errors import ConfigError
from butd.preparation.build import ensure_raw, prepare


def summarize(info: CacheInfo) -> Table:
    counts = info.counts
    table = Table(title=f"cache {info.root}")
    for col in ("split", "questions", "images", "boxes per image", "questions dropped (no features)"):
        table.add_column(col, justify="right")
    for split, c in counts.splits.items():
        b = c.boxes
        boxes = str(b.min) if b.min == b.max else f"{b.min}-{b.max} (mean {b.mean:g})"
        table.add_row(split, f"{c.questions:,}", f"{c.images:,}", boxes, f"{c.dropped_questions:,}")
    table.caption = (
        f"{counts.ntoken:,} words ({counts.glove_words_found:,} in GloVe), "
        f"{counts.num_answers:,} answers, {counts.feature_dim} features per box"
    )
    if counts.skipped_rows:
        table.caption += (
            f"; {counts.skipped_rows:,} bad feature rows skipped, e.g. {counts.skipped_examples[0]}"
        )
    return table


def run(cfg: DictConfig) -> CacheInfo:
    if not isinstance(cfg.force, bool):
        raise ConfigError(f"force={cfg.force!r} is invalid; expected true (rebuild the cache) or false")
    data = DataConfig.from_dict(cfg.data)
    ensure_raw(data)
    return prepare(data, force=bool(cfg.force))


@entry_point("prepare")
def main(cfg: DictConfig) -> None:
    Console().print(summarize(run(cfg)))


if __name__ == "__main__":
    main()
