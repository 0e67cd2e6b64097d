"""`butd.import_reference`: checkpoints and pickles of the original implementation -> butd."""

import json
import os
import subprocess
import sys

import pytest
import torch

from butd.evaluate import evaluate
from butd.evaluation.checkpoint import load_checkpoint
from butd.import_reference import ReferenceFileError, import_reference, read_label2ans
from butd.models import to_reference
from tests.conftest import TINY_DATA, compose_job

ADAMAX = {"_target_": "torch.optim.Adamax", "_partial_": True, "lr": 0.002}


def py2_pickle(obj) -> bytes:
    """Protocol 0 as Python 2's cPickle writes it, each str as a byte string (UTF-8, `S` opcode)."""

    def dump(x) -> bytes:
        if isinstance(x, str):
            return b"S" + repr(x.encode("utf-8"))[1:].encode("ascii") + b"\n"
        if isinstance(x, int):
            return b"I%d\n" % x
        if isinstance(x, list):
            return b"(l" + b"".join(dump(v) + b"a" for v in x)
        if isinstance(x, dict):
            return b"(d" + b"".join(dump(k) + dump(v) + b"s" for k, v in x.items())
        raise TypeError(type(x))

    return dump(obj) + b"."


def _reference_files(folder, state, words, answers):
    """model.pth of a DataParallel model, dictionary.pkl and trainval_label2ans.pkl."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, folder / "model.pth")
    (folder / "dictionary.pkl").write_bytes(py2_pickle([{w: i for i, w in enumerate(words)}, words]))
    (folder / "trainval_label2ans.pkl").write_bytes(py2_pickle(answers))
    return {k: folder / n for k, n in [("checkpoint", "model.pth"), ("dictionary", "dictionary.pkl"),
                                        ("label2ans", "trainval_label2ans.pkl")]}  # fmt: skip


def test_python2_pickles_decode_to_text(tmp_path):
    path = tmp_path / "trainval_label2ans.pkl"
    path.write_bytes(py2_pickle(["yes", "café", "o'clock"]))
    assert read_label2ans(path) == ["yes", "café", "o'clock"]


def test_golden_weights_give_the_reference_logits_after_import(golden_dir, tmp_path):
    golden = torch.load(golden_dir / "model_visible_newatt.pt")
    state = {k: (v.reshape(1) if k.endswith("weight_g") else v) for k, v in golden["state_dict"].items()}
    words = [f"w{i}" for i in range(golden["config"]["ntoken"])]
    answers = [f"a{i}" for i in range(golden["config"]["num_ans_candidates"])]
    files = _reference_files(tmp_path / "ref", state, words, answers)
    out = import_reference(**files, out=tmp_path / "ref.ckpt", optimizer=ADAMAX)
    ckpt = load_checkpoint(out)
    assert ckpt.vocab.idx2word == words and ckpt.answers == answers and ckpt.data_config is None
    with torch.no_grad():
        logits = ckpt.model(golden["v"], golden["q"], golden["b"])
    torch.testing.assert_close(logits, golden["logits_eval"], atol=1e-5, rtol=0)
    # an existing file at `out` is never replaced unless the command says overwrite=true
    written = out.read_bytes()
    with pytest.raises(ReferenceFileError, match=r"out=.*ref.ckpt exists; .* overwrite=true"):
        import_reference(**files, out=out, optimizer=ADAMAX)
    assert out.read_bytes() == written
    import_reference(**files, out=out, optimizer=ADAMAX, overwrite=True)
    assert load_checkpoint(out).answers == answers and not list(tmp_path.glob("*.partial"))


def test_files_that_do_not_belong_together_are_refused(golden_dir, tmp_path):
    state = torch.load(golden_dir / "model_visible_newatt.pt")["state_dict"]
    files = _reference_files(tmp_path, state, [f"w{i}" for i in range(49)], [f"a{i}" for i in range(10)])
    with pytest.raises(
        ReferenceFileError, match=r"dictionary.pkl has 49 words but the model's embedding has 50"
    ):
        import_reference(**files, out=tmp_path / "x.ckpt", optimizer=ADAMAX)
    files = _reference_files(tmp_path, state, [f"w{i}" for i in range(50)], [f"a{i}" for i in range(9)])
    with pytest.raises(ReferenceFileError, match=r"has 9 answers but the model's classifier has 10 outputs"):
        import_reference(**files, out=tmp_path / "x.ckpt", optimizer=ADAMAX)
    (tmp_path / "dictionary.pkl").write_bytes(py2_pickle(["just", "words"]))
    with pytest.raises(ReferenceFileError, match=r"\[word2idx, idx2word\]"):
        import_reference(**files, out=tmp_path / "x.ckpt", optimizer=ADAMAX)
    files = _reference_files(tmp_path, state, [f"w{i}" for i in range(50)], [f"a{i}" for i in range(10)])
    torch.save({"module.something": torch.zeros(2)}, files["checkpoint"])
    with pytest.raises(ReferenceFileError, match="lacks 'w_emb.emb.weight'"):
        import_reference(**files, out=tmp_path / "x.ckpt", optimizer=ADAMAX)
    (tmp_path / "model.pth").write_text("nonsense")
    with pytest.raises(ReferenceFileError, match="is not a torch state dict"):
        import_reference(**files, out=tmp_path / "x.ckpt", optimizer=ADAMAX)


@pytest.mark.slow
def test_an_imported_checkpoint_in_python2_order_evaluates_like_the_original(
    tiny_run, tiny_data_dir, tmp_path
):
    """Words and answers shuffled (with the matching weight rows), as the original's pickles order
    them: the imported checkpoint still answers every question exactly as before."""
    original = load_checkpoint(tiny_run["ckpt"])
    state = to_reference(original.model)
    g = torch.Generator().manual_seed(0)
    word_order = torch.randperm(len(original.vocab), generator=g).tolist()
    answer_order = torch.randperm(len(original.answers), generator=g).tolist()
    emb = state["w_emb.emb.weight"]
    state["w_emb.emb.weight"] = torch.cat([emb[word_order], emb[-1:]])
    state["classifier.main.3.weight_v"] = state["classifier.main.3.weight_v"][answer_order]
    state["classifier.main.3.bias"] = state["classifier.main.3.bias"][answer_order]
    words = [original.vocab.idx2word[i] for i in word_order]
    answers = [original.answers[i] for i in answer_order]
    files = _reference_files(tmp_path / "ref", state, words, answers)

    data = [o for o in TINY_DATA if o != "data=synthetic"]
    run = subprocess.run(
        [sys.executable, "-m", "butd.import_reference", "data=synthetic", *data,
         *(f"{k}={v}" for k, v in files.items()), f"out={tmp_path / 'imported.ckpt'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "BUTD_DATA_DIR": str(tiny_data_dir)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"butd checkpoint written to {tmp_path / 'imported.ckpt'}: newatt attention" in run.stdout

    def predictions(ckpt, out):
        cfg = compose_job("evaluate", [f"ckpt_path={ckpt}", "trainer.accelerator=cpu"],
                          data_dir=tiny_data_dir, output_dir=out)  # fmt: skip
        metrics = evaluate(cfg)
        return json.loads((out / "predictions.json").read_text()), metrics

    imported, imported_metrics = predictions(tmp_path / "imported.ckpt", tmp_path / "a")
    before, before_metrics = predictions(tiny_run["ckpt"], tmp_path / "b")
    assert imported == before
    assert imported_metrics["official"] == before_metrics["official"]
    assert imported_metrics["score"] == pytest.approx(before_metrics["score"])
