"""butd.files: a file written through the atomic helper is the old one or the new one, never a part."""

import json

import pytest

from butd.files import PARTIAL, atomic_open, atomic_write_json, atomic_write_text, partial_path


def test_a_write_replaces_the_file_and_leaves_no_partial(tmp_path):
    path = tmp_path / "sub" / "metrics.json"  # the folder is made
    assert atomic_write_json(path, {"val/score": 1.5}) == path
    assert json.loads(path.read_text()) == {"val/score": 1.5}
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_an_error_mid_write_keeps_the_old_file_and_removes_the_partial(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_open(path, "w", newline="") as fh:
            fh.write("half of the new")
            assert partial_path(path).is_file() and path.read_text() == "old\n"  # mid-write: the old file
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert not (tmp_path / f"report.csv{PARTIAL}").exists()
