"""`python -m butd.evaluate ckpt_path=... split=val`: a checkpoint scored on an annotated split.

Writes, in the run folder (`outputs/evaluate/runs/<time>/`):
- `predictions.json`: `[{"question_id", "answer"}]`, the EvalAI results format;
- `metrics.json`: the reference's soft `score` and `upper_bound`, and the official VQA metric
  (`official.overall`, `perAnswerType`, `perQuestionType`), all in percent;
and prints them as tables.

The test evaluation a training run makes at its end (`data.test_split`), run alone: for a
checkpoint in a training run's `checkpoints/` folder and `split` equal to that run's
`data.test_split`, the scores also go into the run's `metrics.json` as `test/*` (what the
training would have written), unless it holds them already. This is the command a run stopped
during its test evaluation prints.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from butd.config.data import DATA_FORMATS
from butd.config.entry import entry_point
from butd.config.output import report_written
from butd.errors import UserError
from butd.files import atomic_write_json
from butd.vqa.official import ANSWER_TYPES

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation; returns what metrics.json holds."""
    # torch and the checkpoint load here, after Hydra has checked the command line
    import h5py

    from butd.evaluation import vqa_eval
    from butd.evaluation.inference import open_checkpoint, run_split, soft_scores
    from butd.preparation.build import prepared_cache
    from butd.vqa.official import annotations_from_cache

    ckpt, data = open_checkpoint(cfg)
    info = prepared_cache(data)
    split = str(cfg.split)
    with h5py.File(info.split_path(split), "r") as f:
        if not f.attrs["has_targets"]:
            raise UserError(
                f"split '{split}' of data={data.name} has no annotations, so it cannot be scored; "
                f"write its results file with `python -m butd.predict ckpt_path={cfg.ckpt_path} "
                f"split={split}` (and upload it to EvalAI)"
            )
        own_layout = DATA_FORMATS[data.format].own_layout
        annotations = None if own_layout else annotations_from_cache(f)
    dataset, qids, labels, alignment = run_split(cfg, ckpt, data, info, split)
    if own_layout:  # GQA's metrics and predictions format (butd.evaluation.gqa)
        return _evaluate_gqa(cfg, ckpt, data, info, split, qids, alignment.answer_to_cache[labels])
    results = [
        {"question_id": int(q), "answer": ckpt.answers[int(i)]} for q, i in zip(qids, labels, strict=True)
    ]
    official = vqa_eval(annotations, None, results)
    score, best = soft_scores(dataset, alignment.answer_to_cache[labels])

    out = Path(cfg.paths.output_dir)
    metrics = {
        "checkpoint": str(ckpt.path),
        "data": data.name,
        "split": split,
        "questions": len(results),
        "dropped_questions": info.counts.splits[split].dropped_questions,
        "score": 100 * float(score.mean()),
        "upper_bound": 100 * float(best.mean()),
        "official": {k: official[k] for k in ("overall", "perAnswerType", "perQuestionType")},
        "question_counts": {
            "perAnswerType": dict(Counter(a["answer_type"] for a in annotations["annotations"])),
            "perQuestionType": dict(Counter(a["question_type"] for a in annotations["annotations"])),
        },
    }
    atomic_write_json(out / "predictions.json", results, indent=None)
    atomic_write_json(out / "metrics.json", metrics)
    recorded = record_test_in_run(ckpt.path, (ckpt.data_config or {}).get("test_split"), metrics)
    if recorded is not None:
        metrics["recorded_in"] = str(recorded)
    return metrics


def _evaluate_gqa(cfg, ckpt, data, info, split: str, qids, labels) -> dict[str, Any]:
    from butd.evaluation.gqa import evaluate_gqa

    found = evaluate_gqa(split, info.split_path(split), qids, labels, info.answers())
    out = Path(cfg.paths.output_dir)
    metrics = {
        "checkpoint": str(ckpt.path),
        "data": data.name,
        "split": split,
        "questions": len(qids),
        "balanced_questions": found["balanced_questions"],
        "dropped_questions": info.counts.splits[split].dropped_questions,
        "gqa": found["gqa"],
    }
    atomic_write_json(out / "predictions.json", found["predictions"], indent=None)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def record_test_in_run(ckpt_path: Path, test_split: str | None, metrics: dict[str, Any]) -> Path | None:
    """Add `test/*` to the metrics.json of the training run `ckpt_path` belongs to, when `metrics`
    are of that run's test split and the record has no test/* yet; returns the file written."""
    run = Path(ckpt_path).resolve().parent.parent
    record = run / "metrics.json"
    if Path(ckpt_path).resolve().parent.name != "checkpoints" or metrics["split"] != test_split:
        return None
    try:
        summary = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or "history" not in summary:
        return None  # not a training run's record
    if any(str(k).startswith("test/") for k in summary):
        log.info("%s holds test/* already; left as it is", record)
        return None
    official = metrics["official"]
    summary["test/score"] = metrics["score"]
    summary["test/vqa_acc"] = official["overall"]
    for atype, acc in official["perAnswerType"].items():
        summary[f"test/vqa_acc/{atype.replace('/', '_')}"] = acc  # as training logs them
    summary["test_checkpoint"] = str(ckpt_path)
    summary["test_recorded_by"] = "butd.evaluate"
    atomic_write_json(record, summary)
    log.info("test split %s: added test/* to %s", metrics["split"], record)
    return record


def tables(metrics: dict[str, Any]) -> list[Table]:
    """The answer-type table (with the soft score) and the question-type table; GQA's metrics."""
    if "gqa" in metrics:
        from butd.evaluation.gqa import gqa_table

        title = f"{metrics['data']} {metrics['split']}: {metrics['balanced_questions']:,} balanced questions"
        return [gqa_table(title, metrics["gqa"])]
    official, counts = metrics["official"], metrics["question_counts"]
    main = Table(title=f"{metrics['data']} {metrics['split']}: {metrics['questions']:,} questions")
    for col in ("", "questions", "VQA accuracy"):
        main.add_column(col, justify="right" if col else "left")
    main.add_row("overall", f"{metrics['questions']:,}", f"{official['overall']:.2f}")
    order = {t: i for i, t in enumerate(ANSWER_TYPES)}
    for atype, acc in sorted(official["perAnswerType"].items(), key=lambda kv: order.get(kv[0], len(order))):
        main.add_row(atype, f"{counts['perAnswerType'][atype]:,}", f"{acc:.2f}")
    main.caption = f"soft score {metrics['score']:.2f}, upper bound {metrics['upper_bound']:.2f}"
    per_q = Table(title="per question type")
    for col in ("question type", "questions", "VQA accuracy"):
        per_q.add_column(col, justify="left" if col == "question type" else "right")
    by_count = sorted(official["perQuestionType"], key=lambda t: (-counts["perQuestionType"][t], t))
    for qtype in by_count:
        per_q.add_row(
            qtype, f"{counts['perQuestionType'][qtype]:,}", f"{official['perQuestionType'][qtype]:.2f}"
        )
    return [main, per_q]


@entry_point("evaluate")
def main(cfg: DictConfig) -> float:
    """Returns the official overall accuracy."""
    metrics = evaluate(cfg)
    console = Console()
    for table in tables(metrics):
        console.print(table)
    out = Path(cfg.paths.output_dir)
    report_written([out / "predictions.json", out / "metrics.json", metrics.get("recorded_in")])
    return metrics["gqa"]["accuracy"] if "gqa" in metrics else metrics["official"]["overall"]


if __name__ == "__main__":
    main()
