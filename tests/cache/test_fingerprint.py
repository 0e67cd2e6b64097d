"""Raw files edited after the cache was built, as a user edits them: in place, same size."""

import json
import logging
import os
import shutil

import pytest

from butd.cache import fingerprint as fp
from butd.cache.load import load_cache
from butd.cache.manifest import MANIFEST, CacheError
from butd.config.data import DataConfig
from tests.conftest import TINY_DATA, compose_train


def _copy(tiny_data_dir, tmp_path) -> DataConfig:
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data_dir)  # keeps modification times, as `cp -p` would
    cfg = compose_train(TINY_DATA, data_dir=data_dir, output_dir=data_dir / "x")
    return DataConfig.from_dict(cfg.data)


def _edit_in_place(path, old: bytes, new: bytes) -> None:
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


def test_a_question_edited_to_the_same_size_is_noticed(tiny_data_dir, tmp_path):
    cfg = _copy(tiny_data_dir, tmp_path)
    questions = cfg.raw_path / cfg.questions["train"]
    size = questions.stat().st_size
    _edit_in_place(questions, b'"question": "what', b'"question": "WHAT')
    assert questions.stat().st_size == size
    with pytest.raises(CacheError, match=r"questions\.json has changed .*same size, other content"):
        load_cache(cfg)


def test_a_copied_raw_file_with_the_same_content_still_loads(tiny_data_dir, tmp_path, caplog):
    cfg = _copy(tiny_data_dir, tmp_path)
    questions = cfg.raw_path / cfg.questions["train"]
    os.utime(questions, ns=(0, 10**18))  # a copy without -p: another time, the same bytes
    with caplog.at_level(logging.WARNING):
        load_cache(cfg)
    assert not caplog.records


def test_a_cache_from_before_fingerprints_loads_with_one_warning_and_sizes_still_checked(
    tiny_data_dir, tmp_path, caplog
):
    cfg = _copy(tiny_data_dir, tmp_path)
    manifest_path = cfg.cache_path / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["sources"] = {name: f["size"] for name, f in manifest["sources"].items()}
    manifest_path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        load_cache(cfg)
    assert [r.getMessage() for r in caplog.records if "records only the sizes" in r.getMessage()] != []
    glove = cfg.raw_path / cfg.glove
    with open(glove, "a") as fh:
        fh.write("\n")
    with pytest.raises(CacheError, match=r"has changed .*bytes then"):
        load_cache(cfg)


def test_a_large_file_is_hashed_in_sampled_blocks(tmp_path, monkeypatch):
    """Large files (features TSV, GloVe) are sampled: an edit in a sampled block is caught; a new
    modification time over unchanged samples is a caveat, not an error."""
    monkeypatch.setattr(fp, "FULL_HASH_BYTES", 1024)
    path = tmp_path / "features.tsv"
    path.write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    recorded = fp.fingerprint(path)
    assert recorded["hashed"] == "sampled"
    os.utime(path, ns=(0, recorded["mtime_ns"] + 10**9))
    why, caveat = fp.changed(path, recorded)
    assert why is None and "sampled blocks are unchanged" in caveat
    with open(path, "r+b") as fh:  # the last block is always sampled
        fh.seek(-10, os.SEEK_END)
        fh.write(b"0123456789")
    why, _ = fp.changed(path, recorded)
    assert "sampled SHA-256 differs" in why
    assert fp.changed(path, fp.fingerprint(path)) == (None, None)
