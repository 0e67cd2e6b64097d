"""`butd.predict`: EvalAI results for a whole split, and the top answers to one question."""

import json
import os
import subprocess
import sys

import h5py
import pytest
from rich.console import Console

from butd.cache.load import load_cache
from butd.config.data import DataConfig
from butd.errors import ConfigError, UserError
from butd.evaluation.checkpoint import load_checkpoint
from butd.evaluation.inference import ImageNotFoundError, encode
from butd.predict import predict
from tests.conftest import TINY_DATA, compose_job, compose_train


def _data(tiny_data_dir) -> DataConfig:
    return DataConfig.from_dict(
        compose_train(TINY_DATA, data_dir=tiny_data_dir, output_dir=tiny_data_dir / "x").data
    )


def _predict(tiny_run, tiny_data_dir, tmp_path, *overrides):
    cfg = compose_job("predict", [f"ckpt_path={tiny_run['ckpt']}", "trainer.accelerator=cpu", *overrides],
                      data_dir=tiny_data_dir, output_dir=tmp_path)  # fmt: skip
    console = Console(record=True, width=120)
    return predict(cfg, console), console.export_text()


def test_results_file_answers_every_test_dev_question_once(tiny_run, tiny_data_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="butd")
    path, text = _predict(tiny_run, tiny_data_dir, tmp_path, "split=test-dev2015")
    assert path == tmp_path / "vqa_OpenEnded_mscoco_test-dev2015_butd_results.json"
    assert f"wrote {path.resolve()}" in caplog.text
    results = json.loads(path.read_text())
    data = _data(tiny_data_dir)
    questions = json.loads((data.raw_path / data.questions["test-dev2015"]).read_text())["questions"]
    assert sorted(r["question_id"] for r in results) == sorted(q["question_id"] for q in questions)
    answers = set(load_checkpoint(tiny_run["ckpt"]).answers)
    assert all(set(r) == {"question_id", "answer"} and r["answer"] in answers for r in results)


def test_one_question_lists_top_answers_and_unknown_words(tiny_run, tiny_data_dir, tmp_path):
    with h5py.File(load_cache(_data(tiny_data_dir)).split_path("val")) as f:
        image_id = int(f["images/image_id"][0])
    row, text = _predict(
        tiny_run,
        tiny_data_dir,
        tmp_path,
        f"image_id={image_id}",
        "question='How many purple unicorns are there?'",
    )
    for rank, a in enumerate(row["answers"], start=1):  # printed as a table, one row per answer
        assert f"│ {rank} │ {a['answer']}" in text and f"{a['probability']:.3f}" in text
    assert len(row["answers"]) == 5 and all(0 < a["probability"] < 1 for a in row["answers"])
    probs = [a["probability"] for a in row["answers"]]
    assert probs == sorted(probs, reverse=True)
    assert row["unknown_words"] == ["unicorns"] and "unicorns" in text and "how many purple are there" in text
    assert len(row["attention"]) == 6 and abs(sum(row["attention"]) - 1) < 1e-5
    assert json.loads((tmp_path / "answer.json").read_text())["image_id"] == image_id


def test_unknown_words_are_dropped_from_the_encoding(tiny_run):
    ckpt = load_checkpoint(tiny_run["ckpt"])
    ids, unknown = encode(ckpt, "what color is the flamingo?")
    known, _ = encode(ckpt, "what color is the?")
    assert unknown == ["flamingo"] and ids == known and len(ids) == 14
    assert ids[-1] == ckpt.vocab.word2idx["the"] and ids[0] == ckpt.vocab.padding_idx


def test_bad_requests_are_explained(tiny_run, tiny_data_dir, tmp_path):
    with pytest.raises(ImageNotFoundError, match=r"image_id=7 is not in the cache .*searched splits .*'val'"):
        _predict(tiny_run, tiny_data_dir, tmp_path, "image_id=7", "question=what?")
    with pytest.raises(ConfigError, match="split=test-dev2015 .* or image_id=ID"):
        _predict(tiny_run, tiny_data_dir, tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        _predict(tiny_run, tiny_data_dir, tmp_path, "split=val", "image_id=7")


@pytest.mark.slow
def test_predict_from_the_command_line_names_the_results_file(tiny_run, tiny_data_dir, tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "butd.predict",
            f"ckpt_path={tiny_run['ckpt']}",
            "split=test2015",
            "trainer=cpu",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BUTD_DATA_DIR": str(tiny_data_dir), "COLUMNS": "300"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (path,) = (tmp_path / "outputs" / "predict" / "runs").glob(
        "*/vqa_OpenEnded_mscoco_test2015_butd_results.json"
    )
    assert f"wrote {path.resolve()}" in run.stdout
    with h5py.File(load_cache(_data(tiny_data_dir)).split_path("test2015")) as f:
        assert len(json.loads(path.read_text())) == len(f["questions/question_id"]) > 0


def test_vqa2_test_data_config_prepares_the_test_splits_from_the_test_features(tmp_path):
    from butd.cache.manifest import raw_files

    cfg = compose_job("predict", ["data=vqa2_test", "ckpt_path=x"], data_dir=tmp_path, output_dir=tmp_path)
    data, train = DataConfig.from_dict(cfg.data), _vqa2(tmp_path)
    assert data.prepare_splits == ["test2015", "test-dev2015"] and data.cache_path != train.cache_path
    assert data.features == ["test2015_36/test2015_resnet101_faster_rcnn_genome_36.tsv"]
    # the same files build the vocabulary and the answers as for training, so checkpoints fit
    assert (data.vocab_splits, data.answer_splits) == (train.vocab_splits, train.answer_splits)
    names = {p.name for p in raw_files(data)}
    assert (
        "v2_mscoco_train2014_annotations.json" in names
        and "trainval_resnet101_faster_rcnn_genome_36.tsv" not in names
    )


def _vqa2(tmp_path) -> DataConfig:
    return DataConfig.from_dict(compose_train(["data=vqa2"], data_dir=tmp_path, output_dir=tmp_path).data)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["top_k=0"], "top_k=0 is invalid; expected an integer >= 1"),
        (["top_k=-3"], "top_k=-3 is invalid; expected an integer >= 1"),
        (["question=' ? '"], "has no words to answer"),
    ],
)
def test_bad_question_arguments_are_named_before_the_checkpoint_loads(tmp_path, overrides, message):
    # the checkpoint does not exist: the argument check must come first
    cfg = compose_job(
        "predict",
        [f"ckpt_path={tmp_path / 'absent.ckpt'}", "image_id=1", "question='what color?'", *overrides],
        data_dir=tmp_path,
        output_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match=message):
        predict(cfg, Console(record=True, width=120))


def test_a_question_longer_than_the_model_reads_is_noted(tiny_run, tiny_data_dir, tmp_path):
    with h5py.File(load_cache(_data(tiny_data_dir)).split_path("val")) as f:
        image_id = int(f["images/image_id"][0])
    words = " ".join(f"what{i}" for i in range(5)) + " " + " ".join(["color"] * 15)
    _, text = _predict(tiny_run, tiny_data_dir, tmp_path, f"image_id={image_id}", f"question='{words}'")
    assert "the question has 20 words; the model reads the first 14" in " ".join(text.split())
    _, text = _predict(tiny_run, tiny_data_dir, tmp_path, f"image_id={image_id}", "question='what color'")
    assert "the model reads the first" not in text


def test_a_checkpoints_data_paths_are_read_never_written(tiny_run, tmp_path):
    """A checkpoint whose saved data config points at someone's raw files: predict reads there
    (and finds no cache) but generates nothing over them."""
    import torch

    victim = tmp_path / "victim"
    victim.mkdir()
    questions = victim / "v2_OpenEnded_mscoco_train2014_questions.json"
    questions.write_text('{"questions": "original"}')
    raw = torch.load(tiny_run["ckpt"], map_location="cpu", weights_only=True)
    assert raw["butd"]["data_config"]["auto_prepare"] is True  # the synthetic set prepares itself
    raw["butd"]["data_config"].update(raw_dir=str(victim), cache_dir=str(victim / "cache"))
    torch.save(raw, tmp_path / "moved.ckpt")
    args = [f"ckpt_path={tmp_path / 'moved.ckpt'}", "trainer.accelerator=cpu", "split=val"]
    cfg = compose_job("predict", args, data_dir=tmp_path / "data", output_dir=tmp_path / "out")
    with pytest.raises(UserError, match=r"cache"):
        predict(cfg, Console(record=True, width=120))
    assert questions.read_text() == '{"questions": "original"}'
    assert sorted(p.name for p in victim.iterdir()) == [questions.name]
