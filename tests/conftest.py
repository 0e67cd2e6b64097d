"""Shared fixtures: where the golden oracles produced by the reference code live."""

from pathlib import Path

import pytest

# tests/conftest.py -> parents[1] is the repo root; the oracles sit beside it in shared/.
GOLDEN_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """Folder of golden JSON/pt files; a missing folder is a hard failure, never a skip."""
    if not GOLDEN_DIR.is_dir():
        pytest.fail(
            f"golden oracle folder not found at {GOLDEN_DIR}; tests need the shared/golden "
            "checkout next to the repository",
            pytrace=False,
        )
    return GOLDEN_DIR
