"""Fixtures of the preparation tests."""

import shutil

import pytest


@pytest.fixture()
def data_copy(tiny_data_dir, tmp_path):
    """A private copy of the tiny set (raw files and cache) that a test may damage."""
    target = tmp_path / "data"
    shutil.copytree(tiny_data_dir, target)
    return target
