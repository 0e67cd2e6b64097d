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


def test_a_study_run_in_parts_is_one_table_with_the_parts_joined(tiny_data_dir, tmp_path, capsys):
    """`--sweep PART=DIR`, repeated: sweeps run apart (one per seed, as a long study is split over
    sittings) are reported as one study, each row with both seeds and its Δ interval."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    tiny = [o for o in TINY_DATA if o != "data=synthetic"]
    sweeps = []
    for seed in (1111, 1112):
        sweeps.append(tmp_path / f"part_s{seed}")
        cmd = [sys.executable, "-m", "butd.train", "-m", "experiment=[quickstart,ablation_activation]",
               *tiny, "model.activation=relu,glu", f"seed={seed}", "trainer.max_epochs=1",
               "model.num_hid=16", "logger=csv", f"paths.data_dir={tiny_data_dir}",
               f"paths.log_dir={tmp_path / 'logs'}", f"hydra.sweep.dir={sweeps[-1]}"]  # fmt: skip
        run = subprocess.run(
            cmd, cwd=tmp_path, capture_output=True, text=True, env=subprocess_env(OMP_NUM_THREADS="1")
        )
        assert run.returncode == 0, run.stderr[-3000:]

    script = runpy.run_path(str(REPO / "scripts" / "readme_figures.py"))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- figures:ablation -->\nold\n<!-- /figures:ablation -->\n")
    log_dir = tmp_path / "figures"
    args = ["--parts", "ablation", "--write", str(readme), "--log-dir", str(log_dir)]
    for sweep in sweeps:
        args += ["--sweep", f"ablation={sweep}"]
    assert script["main"](args) == 0

    rows = {
        line.split("|")[1].strip(): line for line in readme.read_text().splitlines() if line.startswith("| ")
    }
    assert rows["relu"].split("|")[2].strip() == "2" and rows["glu"].split("|")[2].strip() == "2"
    assert "reference" in rows["relu"] and "[" in rows["glu"]  # the Δ with its interval over 2 seeds
    (report,) = log_dir.glob("*/ablation_report/report.md")
    assert "part_s1111 + part_s1112" in report.read_text()  # the parts' names, not their full paths
    assert not list(log_dir.glob("*/ablation/"))  # reported, not trained again
    with pytest.raises(SystemExit):
        script["main"](["--parts", "ablation", "--sweep", f"ablation={tmp_path / 'missing'}"])
    assert "expected PART=DIR" in capsys.readouterr().err
