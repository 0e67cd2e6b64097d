"""The golden oracles committed in tests/golden are the ones in shared/golden beside the checkout."""

import pytest

from tests.conftest import GOLDEN_DIR, SHARED_GOLDEN_DIR


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_golden_folder_is_in_the_repository(golden_dir):
    assert golden_dir == GOLDEN_DIR
    names = _files(golden_dir)
    assert "README.md" in names
    assert any(n.endswith(".pt") for n in names) and any(n.endswith(".json") for n in names)


def test_golden_copy_is_identical_to_shared_golden(golden_dir):
    if not SHARED_GOLDEN_DIR.is_dir():
        pytest.skip(
            "tests/golden is compared with the copy it was made from only on the development "
            "machines, which keep it beside the checkout (../shared/golden); a clone has none"
        )
    ours, shared = _files(golden_dir), _files(SHARED_GOLDEN_DIR)
    assert ours == shared, "tests/golden and shared/golden hold different file names"
    differ = [n for n in ours if (golden_dir / n).read_bytes() != (SHARED_GOLDEN_DIR / n).read_bytes()]
    assert not differ, f"tests/golden differs from shared/golden in: {differ}"
