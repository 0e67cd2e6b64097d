"""A full disk while prepare writes the cache, on a real small tmpfs."""

import pytest

from butd.cache.load import load_cache
from butd.cache.manifest import CacheError
from butd.config.data import DataConfig
from butd.preparation.build import prepare
from tests.conftest import TINY_DATA, compose_train


def test_a_full_disk_during_prepare_is_named_and_the_earlier_cache_kept(small_disk, tiny_data_dir):
    """The room is checked before each write (h5py cannot close a file whose flush failed)."""
    disk = small_disk(128 * 1024)
    cfg = DataConfig.from_dict(
        compose_train(
            [*TINY_DATA, f"data.cache_dir={disk}/cache"], data_dir=tiny_data_dir, output_dir=disk / "x"
        ).data
    )
    prepare(cfg, progress=False)
    before = load_cache(cfg).manifest.created
    small_disk.fill(disk, 60 * 2**20)  # less than the 64 MiB kept free for HDF5
    with pytest.raises(CacheError) as err:
        prepare(cfg, force=True, progress=False)
    message = str(err.value)
    assert message.startswith("disk full: ")
    assert f"bytes free while preparing the cache in {cfg.cache_path}" in message
    assert "Kept: the earlier cache, unchanged; the feature conversion so far" in message
    assert load_cache(cfg).manifest.created == before  # still there, still loads

    (disk / "filler").unlink()  # space freed: the same command finishes
    info = prepare(cfg, force=True, progress=False)
    assert info.manifest.created >= before and not list(cfg.cache_path.glob("*.partial"))
