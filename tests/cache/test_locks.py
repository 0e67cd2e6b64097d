"""The cache folder's lock: one writer, readers wait for it, the holder named."""

import logging
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest

from butd.cache.locks import LOCK_FILE, cache_lock
from tests.conftest import REPO, TINY_DATA

HOLD = """
import sys, time
from pathlib import Path
from butd.cache.locks import cache_lock
with cache_lock(Path(sys.argv[1]), exclusive=True):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    (Path(sys.argv[1]) / "written").touch()
"""


def test_a_reader_waits_for_the_writer_and_names_its_pid(tmp_path, caplog):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "1.5"], stdout=subprocess.PIPE,
                              text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with caplog.at_level(logging.WARNING, logger="butd.cache.locks"):
        with cache_lock(tmp_path, exclusive=False):
            assert (tmp_path / "written").exists()  # the writer finished before the reader went in
    assert f"in use by a prepare (pid {holder.pid})" in caplog.text
    assert (tmp_path / LOCK_FILE).read_text() == ""  # the pid is cleared on release
    holder.wait(timeout=60)


def test_readers_share_and_a_read_only_folder_reads_without_a_lock(tmp_path, caplog):
    with cache_lock(tmp_path, exclusive=False), cache_lock(tmp_path, exclusive=False):
        pass
    with cache_lock(tmp_path / "missing", exclusive=False):  # nothing to lock, nothing to write
        pass
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
def test_two_forced_prepares_at_once_without_hdf5_locking_leave_a_readable_cache(tmp_path):
    """What NFS and Lustre do: HDF5 locking off. The second waits for the first, then rebuilds."""
    data = [o for o in TINY_DATA if o != "data=synthetic"]
    env = {**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE", "BUTD_DATA_DIR": str(tmp_path / "d"),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    first = subprocess.run([sys.executable, "-m", "butd.prepare", "data=synthetic", *data], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    args = [sys.executable, "-m", "butd.prepare", "data=synthetic", *data, "force=true"]
    lock = tmp_path / "d" / "synthetic" / "cache" / LOCK_FILE
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    outs = [log.open("w") for log in logs]
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=outs[0], stderr=subprocess.STDOUT)
    while not lock.read_text() and first.poll() is None:  # until the first holds the lock (its pid)
        time.sleep(0.005)
    # a slow prepare, made deterministic: the first stops while it holds the lock (the tiny set
    # builds in less time than the second takes to start)
    first.send_signal(signal.SIGSTOP)
    second = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=outs[1], stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while "in use by a prepare (pid" not in logs[1].read_text():
        assert second.poll() is None and time.monotonic() < deadline, logs[1].read_text()[-2000:]
        time.sleep(0.05)
    first.send_signal(signal.SIGCONT)
    runs = [first, second]
    for proc, out in zip(runs, outs, strict=True):
        proc.wait(timeout=600)
        out.close()
    assert [p.returncode for p in runs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    assert f"in use by a prepare (pid {first.pid})" in logs[1].read_text()
    cache = tmp_path / "d" / "synthetic" / "cache"
    assert not list(cache.glob("*.partial"))
    for split in cache.glob("*.h5"):
        with h5py.File(split, "r") as fh:
            assert len(fh.keys()) > 0
