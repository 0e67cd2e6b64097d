"""GQA's download script and its table in `butd.preparation.sources` agree, and a missing GQA raw
file is named with the command that fetches it."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from butd.cache.manifest import CacheError
from butd.preparation.build import prepare
from butd.preparation.sources import GQA_ARCHIVES, GQA_SCRIPT
from tests.conftest import REPO
from tests.gqa_data import gqa_config

SCRIPT = REPO / GQA_SCRIPT


def test_script_and_sources_list_the_same_gqa_archives():
    rows = re.findall(r'^    "(\w+) (\S+) (\S+) (\d+) (\d+) (yes|no)"$', SCRIPT.read_text(), re.M)
    expected = [
        (a.group, a.name, a.folder, str(a.download_mb), str(a.unpacked_mb), "yes" if a.estimated else "no")
        for a in GQA_ARCHIVES
    ]
    assert rows == expected


def test_dry_run_lists_every_archive_and_writes_nothing(tmp_path):
    run = subprocess.run(
        ["bash", str(SCRIPT), "all", "--dry-run", "--raw-dir", str(tmp_path / "raw")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert [line.split()[1] for line in run.stdout.splitlines()] == [a.url for a in GQA_ARCHIVES]
    assert not (tmp_path / "raw").exists()
    bad = subprocess.run(["bash", str(SCRIPT), "features"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown argument 'features'" in bad.stderr


def test_a_missing_object_file_is_named_with_the_gqa_download_command(tmp_path):
    from butd.preparation.build import ensure_raw

    cfg = gqa_config(tmp_path)
    ensure_raw(cfg, progress=False)
    (cfg.raw_path / "objects" / "gqa_objects_1.h5").unlink()
    shutil.rmtree(cfg.raw_path / "eval")
    with pytest.raises(CacheError) as err:
        prepare(cfg, progress=False)
    message = str(err.value)
    assert "gqa_objects_1.h5" in message and f"bash {GQA_SCRIPT} objects --raw-dir {cfg.raw_path}" in message
    assert f"bash {GQA_SCRIPT} eval --raw-dir" in message and "official GQA files" in message
