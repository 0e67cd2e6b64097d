"""VQA-CP's file format, the changing-priors re-split, the hold-out and the question-type prior,
on the tiny synthetic set's real raw files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from butd.cache.manifest import CacheError
from butd.config.data import DataConfig
from butd.data.priors import QuestionTypes
from butd.data.splits import SplitTables
from butd.preparation.build import holdout_images, prepare
from butd.preparation.changing_priors import VQACP2_ANNOTATIONS, VQACP2_FILES, VQACP2_QUESTIONS
from butd.preparation.formats import read_entries
from tests.conftest import TINY_CP, compose_train


def _cfg(raw: Path, cache: Path, *overrides: str) -> DataConfig:
    cfg = compose_train(
        [*TINY_CP, f"data.raw_dir={raw}", f"data.cache_dir={cache}", *overrides],
        data_dir=raw.parent,
        output_dir=cache / "unused",
    )
    return DataConfig.from_dict(cfg.data)


def test_the_files_are_in_vqa_cp_format_and_the_priors_differ(tiny_cp_raw):
    for split in ("train", "test"):
        content = json.loads((tiny_cp_raw / VQACP2_QUESTIONS[split]).read_text())
        assert isinstance(content, list) and {q["coco_split"] for q in content} == {"train2014", "val2014"}
    anns = {
        s: read_entries(tiny_cp_raw / VQACP2_ANNOTATIONS[s], "annotations", "vqacp")
        for s in ("train", "test")
    }
    # the most common answer of "is there a" (yes/no) flips between train and test
    top = {
        s: Counter(a["multiple_choice_answer"] for a in anns[s] if a["question_type"] == "is there a")
        for s in anns
    }
    assert top["train"].most_common(1)[0][0] != top["test"].most_common(1)[0][0], top


def test_a_vqa2_file_given_as_vqacp_and_the_reverse_are_named(tiny_data_dir, tiny_cp_raw, tmp_path):
    vqa2 = tiny_data_dir / "synthetic" / "raw" / "v2_OpenEnded_mscoco_train2014_questions.json"
    with pytest.raises(CacheError, match="not a bare list as VQA-CP's files are: a VQA v2 file"):
        read_entries(vqa2, "questions", "vqacp")
    with pytest.raises(CacheError, match="a VQA-CP file\\? Use data=vqacp2"):
        read_entries(tiny_cp_raw / VQACP2_QUESTIONS["train"], "questions", "vqa2")
    entries = json.loads((tiny_cp_raw / VQACP2_QUESTIONS["test"]).read_text())
    del entries[3]["coco_split"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(entries))
    with pytest.raises(
        CacheError, match=f"entry 3 \\(question_id {entries[3]['question_id']}\\) has no 'coco_split'"
    ):
        read_entries(bad, "questions", "vqacp")


def test_holdout_images_are_seeded_and_a_fraction():
    ids = np.repeat(np.arange(100), 3)
    a, b = holdout_images(ids, 0.1, 0), holdout_images(ids, 0.1, 0)
    assert np.array_equal(a, b) and len(a) == 10 and not np.array_equal(a, holdout_images(ids, 0.1, 1))


def test_vqacp2_prepares_with_an_image_disjoint_holdout_and_the_prior(tiny_cp_raw, tmp_path):
    cfg = _cfg(tiny_cp_raw, tmp_path / "cache")
    info = prepare(cfg, progress=False)
    splits = info.manifest.counts.splits
    assert set(splits) == {"train", "holdout", "test"}
    n_train = len(read_entries(tiny_cp_raw / VQACP2_QUESTIONS["train"], "questions", "vqacp"))
    assert splits["train"].questions + splits["holdout"].questions == n_train
    tables = {s: SplitTables.load([info.split_path(s)]) for s in splits}
    train_images = set(np.unique(_image_ids(info.split_path("train"))))
    assert not train_images & set(np.unique(_image_ids(info.split_path("holdout"))))
    assert info.manifest.settings["holdout"] == {"fraction": 0.2, "seed": 0}
    # the prior: each type's row is the mean of its training questions' soft targets
    types = QuestionTypes.of(tables["train"], info.num_answers)
    t = tables["train"]
    first = types.names.index(str(t.question_type[0]))
    mine = np.flatnonzero(t.question_type == t.question_type[0])
    dense = np.zeros((len(mine), info.num_answers))
    for row, q in enumerate(mine):
        lo, hi = t.targets[0][q], t.targets[0][q + 1]
        dense[row, t.targets[1][lo:hi]] = t.targets[2][lo:hi]
    np.testing.assert_allclose(types.prior[first], dense.mean(0), rtol=1e-6)
    assert types.codes(np.array(["never seen"]))[0] == len(types.names)


def _image_ids(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return f["questions/image_id"][:]


def test_questions_without_annotation_are_named(tiny_cp_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_cp_raw, raw)
    anns = json.loads((raw / VQACP2_ANNOTATIONS["test"]).read_text())
    dropped = anns.pop(0)["question_id"]
    (raw / VQACP2_ANNOTATIONS["test"]).write_text(json.dumps(anns))
    with pytest.raises(CacheError, match=f"1 questions have no annotation \\(question_id {dropped}\\)"):
        prepare(_cfg(raw, tmp_path / "cache"), progress=False)


@pytest.mark.slow
def test_the_resplit_is_a_command_for_any_vqa2_layout_folder(tiny_data_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cp"
    source = tiny_data_dir / "synthetic" / "raw"
    done = subprocess.run(
        [sys.executable, "-m", "butd.preparation.changing_priors", str(source), str(out), "--major", "0.8"],
        capture_output=True,
        text=True,
        check=True,
    )
    n = {s: len(json.loads((out / VQACP2_QUESTIONS[s]).read_text())) for s in ("train", "test")}
    assert done.stdout.strip() == f"wrote {out}: train {n['train']:,} questions, test {n['test']:,}"
    total = sum(
        len(read_entries(source / f, "questions", "vqa2"))
        for f in (
            "v2_OpenEnded_mscoco_train2014_questions.json",
            "v2_OpenEnded_mscoco_val2014_questions.json",
        )
    )
    assert n["train"] + n["test"] == total


def _resplit(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "butd.preparation.changing_priors", *map(str, args)],
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_the_resplit_never_replaces_files_it_did_not_write_and_checks_its_arguments(
    tiny_data_dir, tiny_cp_raw, tmp_path
):
    """OUT = SRC holding downloaded VQA-CP files: refused, the files untouched; --overwrite replaces
    them; its own earlier files are replaced freely; bad arguments get one line each."""
    raw = Path(shutil.copytree(tiny_data_dir / "synthetic" / "raw", tmp_path / "raw"))
    for name in VQACP2_FILES:  # "downloaded" VQA-CP files beside the VQA v2 ones
        shutil.copy(tiny_cp_raw / name, raw / name)
    before = {n: (raw / n).read_bytes() for n in VQACP2_FILES}
    refused = _resplit(raw, raw, "--seed", 5)
    assert refused.returncode == 1 and refused.stdout == ""
    assert (
        refused.stderr.startswith(f"error: {raw} holds vqacp_v2_train_questions.json")
        and "--overwrite" in refused.stderr
    )
    assert len(refused.stderr.strip().splitlines()) == 1
    assert {n: (raw / n).read_bytes() for n in VQACP2_FILES} == before
    assert not list(raw.glob("*.partial"))
    assert _resplit(raw, raw, "--seed", 5, "--overwrite").returncode == 0
    assert {n: (raw / n).read_bytes() for n in VQACP2_FILES} != before
    assert _resplit(raw, raw, "--seed", 6).returncode == 0  # now its own files
    (tmp_path / "a_file").write_text("x")
    for args, words in (
        (
            (tmp_path / "missing", tmp_path / "out"),
            f"error: source folder {tmp_path / 'missing'} does not exist",
        ),
        (
            (raw, tmp_path / "out", "--major", "0.3"),
            "error: major=0.3 is invalid; expected a share in (0.5, 1]",
        ),
        ((raw, tmp_path / "a_file"), f"error: {tmp_path / 'a_file'} is a file, not a folder"),
        (
            (tmp_path, tmp_path / "out"),
            f"error: {tmp_path / 'v2_OpenEnded_mscoco_train2014_questions.json'} does not exist",
        ),
    ):
        done = _resplit(*args)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(words) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "out").exists()


def test_the_synthetic_generator_refuses_a_raw_folder_of_other_files(tiny_data_dir, tmp_path):
    """`data.raw_dir` pointed at a folder of real downloads: the generator writes nothing there."""
    from butd.preparation.build import ensure_raw
    from butd.preparation.raw_files import ForeignFileError

    raw = tmp_path / "raw"
    raw.mkdir()
    downloaded = raw / "v2_mscoco_train2014_annotations.json"
    downloaded.write_text('{"annotations": []}')
    cfg = compose_train(
        ["data=synthetic", f"data.raw_dir={raw}"], data_dir=tmp_path, output_dir=tmp_path / "o"
    )
    with pytest.raises(
        ForeignFileError, match=r"holds v2_mscoco_train2014_annotations.json, which the synthetic"
    ):
        ensure_raw(DataConfig.from_dict(cfg.data), progress=False)
    assert downloaded.read_text() == '{"annotations": []}' and sorted(p.name for p in raw.iterdir()) == [
        downloaded.name
    ]


def test_a_holdout_of_every_train_image_is_refused_before_anything_is_written(tiny_cp_raw, tmp_path):
    """`data.holdout_fraction=0.999999` used to end prepare with KeyError 'train'."""
    with pytest.raises(
        CacheError, match=r"data.holdout_fraction=0.999999 holds out all \d+ images of the train"
    ):
        prepare(_cfg(tiny_cp_raw, tmp_path / "cache", "data.holdout_fraction=0.999999"), progress=False)
    assert not (tmp_path / "cache" / "manifest.json").exists() and not list(
        (tmp_path / "cache").glob("*.h5*")
    )
