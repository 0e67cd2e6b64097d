"""`scripts/readme_figures.py` at a tiny size: real training runs, real README blocks rewritten."""

import runpy

import pytest

from tests.conftest import REPO, TINY_DATA

pytestmark = pytest.mark.slow  # trains two models in subprocesses


def test_the_quick_start_block_is_regenerated_with_machine_and_threads(
    tiny_data_dir, tmp_path, monkeypatch, capsys
):
    script = runpy.run_path(str(REPO / "scripts" / "readme_figures.py"))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- figures:quickstart -->\nstale 84.11\n<!-- /figures:quickstart -->\nend\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tiny = [o for o in TINY_DATA if o != "data=synthetic"]
    extra = [
        *tiny,
        "trainer.max_epochs=1",
        "model.num_hid=16",
        "logger=csv",
        f"paths.data_dir={tiny_data_dir}",
    ]
    args = [
        "--parts",
        "quickstart",
        "--write",
        str(readme),
        "--log-dir",
        str(tmp_path / "logs"),
        "--",
        *extra,
    ]
    assert script["main"](args) == 0

    text = readme.read_text()
    assert text.startswith("intro\n<!-- figures:quickstart -->\nMeasured on ") and text.endswith("end\n")
    assert "stale" not in text and "1 thread (OMP_NUM_THREADS=1)" in text
    rows = [line for line in text.splitlines() if line.startswith("| `model=")]
    assert [r.split("`")[1] for r in rows] == ["model=newatt", "model=question_only"]
    assert all("(epoch 0)" in r and r.count("|") == 6 for r in rows)
    assert "1 thread" in capsys.readouterr().out.splitlines()[0]

    with pytest.raises(SystemExit, match="no block <!-- figures:tests -->"):
        script["replace_block"](text, "tests", "x")
