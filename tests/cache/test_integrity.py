"""A cache is checked when it is opened: each crafted copy of the session's tiny cache is refused
in one line naming the file and the dataset, before anything reads from it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from butd.cache.load import load_cache
from butd.cache.manifest import CacheError
from butd.config.data import DataConfig
from tests.conftest import TINY_DATA, compose_train


def _copy(tiny_data_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny data folder (raw files and cache, times kept); returns its cache folder."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data, symlinks=True)
    return data / "synthetic" / "cache"


def _load(cache: Path):
    data_dir = cache.parent.parent
    cfg = compose_train(TINY_DATA, data_dir=data_dir, output_dir=data_dir / "unused")
    return load_cache(DataConfig.from_dict(cfg.data))


def _replace(cache: Path, split: str, key: str, make) -> None:
    """Replace one dataset of a split file, and record the new file size in the manifest as a
    crafted cache would."""
    with h5py.File(cache / f"{split}.h5", "a") as f:
        old = f[key][:]
        del f[key]
        make(f, key, old)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["files"] = {n: (cache / n).stat().st_size for n in manifest["files"]}
    (cache / "manifest.json").write_text(json.dumps(manifest))


def _refused(cache: Path, *words: str) -> str:
    with pytest.raises(CacheError) as err:
        _load(cache)
    message = str(err.value)
    assert "\n" not in message and "python -m butd.prepare data=synthetic force=true" in message, message
    for w in words:
        assert w in message, message
    return message


def _store_question_ids_in(cache: Path, secret: Path) -> None:
    """val's question ids rewritten as HDF5 external storage that reads `secret`."""
    _replace(
        cache,
        "val",
        "questions/question_id",
        lambda f, k, old: f.create_dataset(
            k, shape=old.shape, dtype=old.dtype, external=[(str(secret), 0, h5py.h5f.UNLIMITED)]
        ),
    )


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(np.arange(1000, 1064, dtype=np.int64).tobytes())
    return path


# Case 3: a cache cannot make butd read another file


def test_external_storage_is_refused(tiny_data_dir, tmp_path):
    cache, secret = _copy(tiny_data_dir, tmp_path), _secret(tmp_path)
    _store_question_ids_in(cache, secret)
    _refused(cache, f"{cache / 'val.h5'}: questions/question_id keeps its data in another file", str(secret))


def test_a_view_of_another_file_and_a_link_out_are_refused(tiny_data_dir, tmp_path):
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f["x"] = np.arange(64, dtype=np.int64)

    def view(f, key, old):
        layout = h5py.VirtualLayout(shape=old.shape, dtype=old.dtype)
        layout[:] = h5py.VirtualSource(str(outside), "x", shape=old.shape)
        f.create_virtual_dataset(key, layout)

    cache = _copy(tiny_data_dir, tmp_path / "a")
    _replace(cache, "val", "questions/question_id", view)
    _refused(cache, "questions/question_id is a view of", "not a split file of the source cache recorded")
    cache = _copy(tiny_data_dir, tmp_path / "b")
    _replace(
        cache,
        "val",
        "questions/question_id",
        lambda f, k, old: f.__setitem__(k, h5py.ExternalLink(str(outside), "x")),
    )
    _refused(cache, "questions/question_id is an external link")


def test_a_split_name_outside_the_cache_is_refused(tiny_data_dir, tmp_path):
    cache = _copy(tiny_data_dir, tmp_path)
    shutil.copy(cache / "val.h5", tmp_path / "outside.h5")
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["counts"]["splits"]["../../../outside"] = manifest["counts"]["splits"]["val"]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    _refused(cache, "counts.splits names the split '../../../outside', not a plain file name")


# Case 9: shapes, index ranges and the manifest's schema


def test_a_shape_beyond_the_counts_is_refused_without_reading_it(tiny_data_dir, tmp_path):
    cache = _copy(tiny_data_dir, tmp_path)
    _replace(
        cache,
        "val",
        "questions/question_id",
        lambda f, k, old: f.create_dataset(k, shape=(10**11,), dtype=old.dtype, chunks=(4096,)),
    )
    assert (cache / "val.h5").stat().st_size < 10**6
    _refused(cache, "questions/question_id has shape (100000000000,), the manifest's counts give (64,)")


@pytest.mark.parametrize(
    "key, words",
    [
        ("questions/tokens", "questions/tokens holds values from 0 to 1,000,000, outside the word ids"),
        ("targets/labels", "targets/labels holds values from 0 to 1,000,000, outside the answer labels"),
        ("questions/image_index", "questions/image_index holds values from 0 to 1,000,000, outside the rows"),
        ("images/box_offsets", "images/box_offsets are not offsets from 0 to"),
    ],
)
def test_an_index_out_of_range_is_refused(tiny_data_dir, tmp_path, key, words):
    cache = _copy(tiny_data_dir, tmp_path)

    def bad(f, k, old):
        new = old.copy()
        new.flat[-1 if "offsets" in k else 0] = 10**6
        f.create_dataset(k, data=new)

    _replace(cache, "val", key, bad)
    _refused(cache, f"{cache / 'val.h5'}: {words}")


def test_a_table_of_another_type_is_refused(tiny_data_dir, tmp_path):
    cache = _copy(tiny_data_dir, tmp_path)
    _replace(
        cache, "val", "questions/tokens", lambda f, k, old: f.create_dataset(k, data=old.astype(np.float64))
    )
    _refused(cache, f"{cache / 'val.h5'}: questions/tokens holds float64 values, not integers")


def test_a_manifest_butd_did_not_write_is_refused(tiny_data_dir, tmp_path):
    cache = _copy(tiny_data_dir, tmp_path)
    manifest = json.loads((cache / "manifest.json").read_text())
    for content, words in [
        ([], "the manifest is a JSON list, not an object"),
        ({k: v for k, v in manifest.items() if k != "counts"}, "'counts' is missing or not an object"),
        (
            {**manifest, "counts": {**manifest["counts"], "ntoken": "44"}},
            "counts.ntoken='44' is not a positive",
        ),
        ({**manifest, "files": {"/etc/passwd": 1}}, "'files' is not a mapping of file names in the cache"),
        ({**manifest, "sources": ["train.json"]}, "'sources' is not a mapping of raw file names"),
    ]:
        (cache / "manifest.json").write_text(json.dumps(content))
        _refused(cache, f"{cache / 'manifest.json'}: {words}")


def test_word_and_answer_lists_must_match_the_counts(tiny_data_dir, tmp_path):
    cache = _copy(tiny_data_dir, tmp_path)
    answers = json.loads((cache / "answers.json").read_text())
    (cache / "answers.json").write_text(json.dumps(answers[:-1]))
    _refused(cache, "answers.json does not list the")
    (cache / "answers.json").write_text(json.dumps(answers))
    np.save(cache / "glove.npy", np.zeros((3, 50), np.float32))
    _refused(cache, "glove.npy holds a float32 array of shape (3, 50)")


@pytest.mark.slow
def test_predict_never_reads_a_crafted_cache(tiny_run, tiny_data_dir, tmp_path):
    """The real command on a cache whose question ids live in another file: one line, no results
    file holding that file's bytes."""
    cache, secret = _copy(tiny_data_dir, tmp_path), _secret(tmp_path)
    _store_question_ids_in(cache, secret)
    out = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "butd.predict",
            f"ckpt_path={tiny_run['ckpt']}",
            "split=val",
            f"paths.data_dir={cache.parent.parent}",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "external storage" in errors[0], run.stderr[-3000:]
    assert not list(out.glob("*results.json"))
