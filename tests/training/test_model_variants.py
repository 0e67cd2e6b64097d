"""The model switches of the paper's ablations on the tiny synthetic set: where each starts
(embedding_init, the two-stream classifier's rows), the loss `model.output` trains with, old
checkpoints without the switches, and a real one-epoch fit with each non-default value."""

import json

import h5py
import numpy as np
import pytest
import torch

from butd.cache.load import load_cache
from butd.config.data import DataConfig
from butd.data.answer_vectors import AnswerVectorsError, answer_glove
from butd.errors import ConfigError
from butd.evaluation.checkpoint import load_checkpoint
from butd.evaluation.inference import answer, find_image
from butd.models import ModelConfig
from butd.train import build, train
from butd.training.checkpoint_io import load_weights_only
from butd.training.metrics import vqa_bce_loss, vqa_softmax_loss
from butd.training.resume import resume_differences
from butd.training.validate import validate_train_config

#: the switches added for the paper's ablations, and the reference's value of each
NEW_KEYS = {
    "classifier": "simple",
    "classifier_init": "glove",
    "classifier_image_init": None,
    "output": "sigmoid",
    "embedding_init": "glove",
}


def _image_vectors(path, answers, dim, *, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(len(answers), dim)).astype(np.float32)
    np.savez(path, answers=np.array(answers), vectors=vectors)
    return vectors


def test_the_defaults_are_the_reference():
    cfg = ModelConfig()
    assert {k: getattr(cfg, k) for k in NEW_KEYS} == NEW_KEYS


def test_embedding_init_glove_copies_the_cache_rows_and_random_keeps_its_own(tiny_cfg):
    glove_module, _ = build(validate_train_config(tiny_cfg(["model.num_hid=32"])))
    random_module, datamodule = build(
        validate_train_config(tiny_cfg(["model.num_hid=32", "model.embedding_init=random"]))
    )
    glove = torch.from_numpy(datamodule.info.glove())
    ntoken = datamodule.info.ntoken
    assert torch.equal(glove_module.model.w_emb.emb.weight[:ntoken], glove)
    random_rows = random_module.model.w_emb.emb.weight
    assert not torch.equal(random_rows[:ntoken], glove) and random_rows[:ntoken].abs().min() > 0
    assert torch.equal(random_rows[ntoken], torch.zeros(random_rows.size(1)))  # padding stays zero


def test_two_stream_text_rows_start_from_the_answers_glove_and_image_rows_from_the_file(tiny_cfg, tmp_path):
    path = tmp_path / "img.npz"
    cfg = tiny_cfg(["model.num_hid=32", "model.classifier=two_stream", f"model.classifier_image_init={path}"])
    data = DataConfig.from_dict(cfg.data)
    answers = load_cache(data).answers()
    image = _image_vectors(path, answers[::-1], 32)[::-1]  # the file's order is not the cache's
    module, _ = build(validate_train_config(cfg))
    clf = module.model.classifier
    expected = answer_glove(data.raw_path / data.glove, answers, 50)
    assert expected.found == len(answers)  # the generated GloVe file has every answer's word
    assert torch.equal(clf.text_out.weight, torch.from_numpy(expected.vectors))
    lines = (data.raw_path / data.glove).read_text().splitlines()
    cube = next(line.split()[1:] for line in lines if line.startswith("cube "))
    assert clf.text_out.weight[answers.index("cube")].tolist() == [float(np.float32(x)) for x in cube]
    assert torch.equal(clf.image_out.weight, torch.from_numpy(np.ascontiguousarray(image)))


def test_two_stream_random_init_leaves_glove_out(tiny_cfg):
    cfg = tiny_cfg(["model.classifier=two_stream", "model.classifier_init=random"])
    module, datamodule = build(validate_train_config(cfg))
    data = DataConfig.from_dict(cfg.data)
    rows = module.model.classifier.text_out.weight
    glove = answer_glove(data.raw_path / data.glove, datamodule.info.answers(), 50).vectors
    assert rows.abs().min() > 0 and not torch.equal(rows, torch.from_numpy(glove))


def test_an_image_vector_file_for_other_answers_is_named_before_training(tiny_cfg, tmp_path):
    path = tmp_path / "img.npz"
    cfg = tiny_cfg(["model.classifier=two_stream", f"model.classifier_image_init={path}"])
    answers = load_cache(DataConfig.from_dict(cfg.data)).answers()
    _image_vectors(path, [*answers[:-2], "unicorn"], 32)
    with pytest.raises(AnswerVectorsError, match=r"img.npz does not match .*2 missing .*1 extra .*'unicorn'"):
        build(validate_train_config(cfg))


def test_softmax_with_a_debias_method_is_refused_before_training(tiny_cfg):
    cfg = tiny_cfg(["model.output=softmax", "debias=reweight"])
    with pytest.raises(ConfigError, match="model.output=softmax with debias=reweight"):
        validate_train_config(cfg)
    with pytest.raises(ConfigError, match="model.output=softmax with debias=rubi"):
        validate_train_config(tiny_cfg(["model.output=softmax", "debias=rubi"]))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("output,loss", [("sigmoid", vqa_bce_loss), ("softmax", vqa_softmax_loss)])
def test_training_and_validation_use_the_output_s_objective(tiny_cfg, output, loss):
    module, datamodule = build(
        validate_train_config(tiny_cfg(["model.num_hid=32", f"model.output={output}"]))
    )
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    module.eval()  # no dropout: the same logits twice
    logits, trained = module._training_loss(batch)
    assert torch.equal(trained, loss(logits, batch.target))
    module.validation_step(batch, 0)
    assert torch.allclose(module.val_loss.compute(), loss(logits, batch.target).float())


def test_a_checkpoint_from_before_the_switches_loads_as_the_reference_model(tiny_run, tmp_path):
    raw = load_weights_only(tiny_run["ckpt"])
    for key in NEW_KEYS:
        del raw["hyper_parameters"]["model"][key]
    old = tmp_path / "old.ckpt"
    torch.save(raw, old)
    ckpt = load_checkpoint(old)
    assert ckpt.module.model_cfg == load_checkpoint(tiny_run["ckpt"]).module.model_cfg
    assert {k: getattr(ckpt.module.model_cfg, k) for k in NEW_KEYS} == NEW_KEYS
    # and a run resumes from it: the absent keys are the defaults it was trained with
    current = load_weights_only(tiny_run["ckpt"])
    meta = current["butd"]
    expected = {"hparams": current["hyper_parameters"], "metadata": meta, "data_config": meta["data_config"]}
    assert resume_differences(raw, **expected) == []
    raw["hyper_parameters"]["model"]["output"] = "softmax"
    differences = resume_differences(raw, **expected)
    assert differences == ["model.output ('softmax' in the checkpoint, 'sigmoid' now)"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["model.classifier=two_stream"],
        ["model.classifier=two_stream", "model.classifier_init=random", "model.classifier_image_init=IMG"],
        ["model.output=softmax"],
        ["model.embedding_init=random"],
    ],
    ids=["two_stream-glove", "two_stream-random-image_file", "softmax", "embedding-random"],
)
def test_each_non_default_value_trains_an_epoch(tiny_cfg, tiny_data_dir, tmp_path, overrides):
    path = tmp_path / "img.npz"
    overrides = [o.replace("IMG", str(path)) for o in overrides]
    cfg = tiny_cfg(["model.num_hid=32", "trainer.max_epochs=1", *overrides])
    info = load_cache(DataConfig.from_dict(cfg.data))
    _image_vectors(path, info.answers(), info.feature_dim)
    summary = train(cfg)
    record = json.loads((tmp_path / "logs" / "train" / "runs" / "run" / "metrics.json").read_text())
    assert record["val/score"] == pytest.approx(summary["val/score"]) and 0 < summary["val/score"] <= 100
    assert np.isfinite(record["history"][-1]["val/loss"])
    ckpt = load_checkpoint(record["best_checkpoint"])
    for override in overrides:
        key, value = override.removeprefix("model.").split("=")
        assert str(getattr(ckpt.module.model_cfg, key)) == value
    with h5py.File(info.split_path("val")) as f:
        image_id = int(f["images/image_id"][0])
    result = answer(ckpt, find_image(info, image_id), "what color is the cube?", top_k=len(ckpt.answers))
    total = sum(p for _, p in result.top)
    if ckpt.module.model_cfg.output == "softmax":  # a distribution over the answers
        assert result.output == "softmax" and total == pytest.approx(1.0, abs=1e-5)
    else:  # one sigmoid per answer
        assert result.output == "sigmoid" and total != pytest.approx(1.0, abs=1e-3)


def test_the_answer_table_says_which_function_made_the_probabilities():
    from butd.evaluation.inference import Answer
    from butd.predict import answer_table

    for output, words in (("softmax", "softmax over the answers"), ("sigmoid", "sigmoid of the logit")):
        result = Answer(question="q?", unknown_words=[], top=[("red", 0.5)], attention=None, output=output)
        assert words in answer_table(result, image_id=1, split="val").caption
