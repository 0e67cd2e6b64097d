"""`butd.evaluate` on a checkpoint trained on the tiny synthetic set, and checkpoint/cache checks."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from butd.cache.load import CacheInfo, load_cache
from butd.cache.manifest import MANIFEST, Manifest
from butd.config.data import DataConfig
from butd.errors import CheckpointError, UserError
from butd.evaluate import evaluate
from butd.evaluation import vqa_eval
from butd.evaluation.checkpoint import align, load_checkpoint
from tests.conftest import TINY_DATA, compose_job, compose_train


def _raw(tiny_data_dir, split="val"):
    cfg = DataConfig.from_dict(
        compose_train(TINY_DATA, data_dir=tiny_data_dir, output_dir=tiny_data_dir / "x").data
    )

    def read(name):
        return json.loads((cfg.raw_path / name).read_text())

    return read(cfg.annotations[split]), read(cfg.questions[split])


def test_evaluate_writes_predictions_and_the_metrics_training_logged(tiny_run, tiny_data_dir, tmp_path):
    cfg = compose_job("evaluate", [f"ckpt_path={tiny_run['ckpt']}", "trainer.accelerator=cpu"],
                      data_dir=tiny_data_dir, output_dir=tmp_path)  # fmt: skip
    metrics = evaluate(cfg)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics

    # the official metric on the raw files, independently of the cache
    anns, questions = _raw(tiny_data_dir)
    official = vqa_eval(anns, questions, predictions)
    assert metrics["questions"] == len(anns["annotations"]) == len(predictions)
    assert metrics["official"] == {k: official[k] for k in ("overall", "perAnswerType", "perQuestionType")}
    assert set(metrics["official"]["perAnswerType"]) == {"yes/no", "number", "other"}

    # validation of the last epoch logged the same numbers through the cache's tables
    last = tiny_run["metrics"]["history"][-1]
    assert abs(last["val/vqa_acc"] - official["overall"]) < 0.006
    for atype, acc in official["perAnswerType"].items():
        assert abs(last[f"val/vqa_acc/{atype.replace('/', '_')}"] - acc) < 0.006
    assert abs(last["val/score"] - metrics["score"]) < 1e-3
    assert abs(last["val/upper_bound"] - metrics["upper_bound"]) < 1e-3


def test_a_split_without_annotations_points_to_predict(tiny_run, tiny_data_dir, tmp_path):
    cfg = compose_job("evaluate", [f"ckpt_path={tiny_run['ckpt']}", "split=test-dev2015"],
                      data_dir=tiny_data_dir, output_dir=tmp_path)  # fmt: skip
    with pytest.raises(
        UserError, match=r"no annotations.*python -m butd.predict ckpt_path=.* split=test-dev2015"
    ):
        evaluate(cfg)
    cfg = compose_job("evaluate", [f"ckpt_path={tiny_run['ckpt']}", "split=nope"],
                      data_dir=tiny_data_dir, output_dir=tmp_path)  # fmt: skip
    with pytest.raises(UserError, match=r"split 'nope' is not in the cache"):
        evaluate(cfg)


def test_foreign_and_missing_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "none.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a butd checkpoint.*butd.import_reference"):
        load_checkpoint(tmp_path / "junk.ckpt")


def _edited_cache(tiny_data_dir, tmp_path, edit):
    """A copy of the tiny cache's small files, edited, as a CacheInfo."""
    cfg = DataConfig.from_dict(compose_train(TINY_DATA, data_dir=tiny_data_dir, output_dir=tmp_path).data)
    root = tmp_path / "cache"
    shutil.copytree(load_cache(cfg).root, root, ignore=shutil.ignore_patterns("*.h5"))
    files = {n: json.loads((root / n).read_text()) for n in ("manifest.json", "answers.json", "vocab.json")}
    edit(files)
    for name, content in files.items():
        (root / name).write_text(json.dumps(content))
    return CacheInfo(root=root, manifest=Manifest.read(root / MANIFEST, command="python -m butd.prepare"))


def test_a_checkpoint_that_does_not_fit_the_cache_says_which_part(tiny_run, tiny_data_dir, tmp_path):
    ckpt = load_checkpoint(tiny_run["ckpt"])

    def feature_dim(f):
        f["manifest.json"]["counts"]["feature_dim"] = 2048

    with pytest.raises(
        CheckpointError, match="feature size differs.*32-d object features, the cache holds 2048-d"
    ):
        align(ckpt, _edited_cache(tiny_data_dir, tmp_path / "a", feature_dim))

    def answers(f):
        f["answers.json"][0] = "giraffe"

    with pytest.raises(CheckpointError, match=r"answer lists differ.*1 only in the checkpoint.*'giraffe'"):
        align(ckpt, _edited_cache(tiny_data_dir, tmp_path / "b", answers))

    def vocab(f):
        f["vocab.json"]["words"].append("zebra")

    with pytest.raises(CheckpointError, match=r"vocabulary differs.*1 of the cache's .* words .*'zebra'"):
        align(ckpt, _edited_cache(tiny_data_dir, tmp_path / "c", vocab))

    def reordered(f):
        f["answers.json"].reverse()
        f["vocab.json"]["words"].reverse()

    alignment = align(ckpt, _edited_cache(tiny_data_dir, tmp_path / "d", reordered))
    n = len(ckpt.answers)
    assert alignment.answer_to_cache.tolist() == list(range(n - 1, -1, -1))
    assert alignment.token_map[0] == len(ckpt.vocab) - 1 and alignment.token_map[-1] == ckpt.vocab.padding_idx


@pytest.mark.slow
def test_evaluate_from_the_command_line(tiny_run, tiny_data_dir, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "butd.evaluate", f"ckpt_path={tiny_run['ckpt']}", "split=val", "trainer=cpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BUTD_DATA_DIR": str(tiny_data_dir)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (out,) = (tmp_path / "outputs" / "evaluate" / "runs").iterdir()
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{metrics['official']['overall']:.2f}" in run.stdout
    for heading in ("overall", "yes/no", "number", "other", "per question type", "soft score"):
        assert heading in run.stdout
    for name in ("predictions.json", "metrics.json"):
        assert f"wrote {(out / name).resolve()}" in run.stdout
