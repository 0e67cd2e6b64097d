"""`python -m butd.predict`: answers from a checkpoint.

python -m butd.predict ckpt_path=... split=test-dev2015
    answers every question of a prepared split and writes the EvalAI results file
    `vqa_OpenEnded_mscoco_<split>_butd_results.json` in the run folder;
python -m butd.predict ckpt_path=... image_id=42 question="what color is the bus?"
    prints the top answers for one question about one image of the cache.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from butd.config.data import DATA_FORMATS
from butd.config.entry import entry_point
from butd.config.output import report_written
from butd.errors import ConfigError
from butd.files import atomic_write_json
from butd.vqa.text import tokenize

# the checkpoint and torch load inside the functions, after the arguments are checked
if TYPE_CHECKING:
    from butd.evaluation.inference import Answer

log = logging.getLogger(__name__)


def results_name(split: str) -> str:
    """The official results file naming: `vqa_OpenEnded_mscoco_<subtype>_<method>_results.json`."""
    return f"vqa_OpenEnded_mscoco_{split}_butd_results.json"


def predict_split(cfg: DictConfig, console: Console) -> Path:
    """Write the results file for every question of `cfg.split`; returns its path."""
    from butd.evaluation.inference import open_checkpoint, run_split
    from butd.preparation.build import prepared_cache

    ckpt, data = open_checkpoint(cfg)
    info = prepared_cache(data)
    split = str(cfg.split)
    _, qids, labels, _ = run_split(cfg, ckpt, data, info, split)
    results = [
        {"question_id": int(q), "answer": ckpt.answers[int(i)]} for q, i in zip(qids, labels, strict=True)
    ]
    name = results_name(split)
    if DATA_FORMATS[data.format].own_layout:  # GQA's predictions file, by its question ids
        from butd.evaluation.gqa import predictions

        results = predictions(info.split_path(split), split, qids, [r["answer"] for r in results])
        name = f"{split}_predictions.json"
    path = atomic_write_json(Path(cfg.paths.output_dir) / name, results, indent=None)
    dropped = info.counts.splits[split].dropped_questions
    if dropped:
        console.print(
            f"[bold red]warning:[/] {dropped:,} questions of {split} had no image features when the "
            "cache was prepared and are not answered; EvalAI refuses incomplete results"
        )
    console.print(f"{len(results):,} answers for {data.name} {split}")
    report_written([path])
    return path


def predict_question(cfg: DictConfig, console: Console) -> dict[str, Any]:
    """Answer one question about one image; prints and returns the answers."""
    from butd.evaluation.inference import (
        answer,
        answer_row,
        find_image,
        image_id_arg,
        max_question_len,
        open_checkpoint,
    )
    from butd.preparation.build import prepared_cache

    image_id = image_id_arg(cfg.image_id)
    ckpt, data = open_checkpoint(cfg)
    info = prepared_cache(data)
    image = find_image(info, image_id)
    result = answer(ckpt, image, str(cfg.question), top_k=int(cfg.top_k))
    table = answer_table(result, image_id=image.image_id, split=image.split)
    # title and caption on lines of their own: Rich wraps them at the width of the three columns
    heading, table.title, table.caption = (table.title, table.caption), None, None
    console.print(str(heading[0]), markup=False, soft_wrap=True)
    console.print(table)
    console.print(str(heading[1]), markup=False, soft_wrap=True)
    words, max_len = tokenize(result.question), max_question_len(ckpt)
    if len(words) > max_len:
        console.print(
            f"[yellow]note:[/] the question has {len(words)} words; the model reads the first {max_len} "
            f"({' '.join(words[:max_len])!r}), the rest is left out"
        )
    if result.unknown_words:
        console.print(
            f"[yellow]not in the vocabulary, left out:[/] {', '.join(result.unknown_words)} "
            f"(the model read: {' '.join(w for w in _words(result) if w not in result.unknown_words)!r})"
        )
    row = answer_row(result)
    path = atomic_write_json(Path(cfg.paths.output_dir) / "answer.json", {"image_id": image.image_id, **row})
    report_written([path])
    return row


def _words(result: Answer) -> list[str]:
    return tokenize(result.question)


def check_question_args(cfg: DictConfig) -> None:
    """`top_k` a positive integer and a question with words, before the checkpoint loads."""
    top_k = cfg.top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} is invalid; expected an integer >= 1 (how many answers to show)")
    if not tokenize(str(cfg.question)):
        raise ConfigError(
            f"question={cfg.question!r} has no words to answer; give one, e.g. "
            'question="what color is the bus?"'
        )


def answer_table(result: Answer, *, image_id: int, split: str) -> Table:
    """The top answers, titled with the image and question, captioned with what the
    probabilities are."""
    table = Table(title=f"image {image_id} ({split}): {result.question}")
    table.add_column("#", justify="right")
    table.add_column("answer")
    table.add_column("TIE" if result.output == "tie" else "probability", justify="right")
    for rank, (ans, p) in enumerate(result.top, start=1):
        table.add_row(str(rank), ans, f"{p:.3f}")
    captions = {
        "softmax": "probability: softmax over the answers (trained with cross-entropy on the soft scores)",
        "tie": "TIE: CF-VQA's total indirect effect, log p(a | q, v) - log p(a | q) (its counterfactual "
        "inference; not a probability)",
    }
    sigmoid = "probability: sigmoid of the logit (trained per answer with BCE)"
    table.caption = captions.get(result.output, sigmoid)
    return table


def predict(cfg: DictConfig, console: Console) -> Any:
    """Dispatch on the arguments: a whole split, or one question."""
    if cfg.split is not None and (cfg.image_id is not None or cfg.question is not None):
        raise ConfigError("give either split=NAME, or image_id=ID and question=TEXT, not both")
    if cfg.split is not None:
        return predict_split(cfg, console)
    if cfg.image_id is None or cfg.question is None:
        raise ConfigError(
            "say what to answer: split=test-dev2015 (every question of a split), or "
            'image_id=ID question="what color is the bus?"'
        )
    check_question_args(cfg)
    return predict_question(cfg, console)


@entry_point("predict")
def main(cfg: DictConfig) -> None:
    predict(cfg, Console())


if __name__ == "__main__":
    main()
