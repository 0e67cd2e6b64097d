"""The raw-file table, the download script and the "missing raw files" messages, kept in step.

The script runs as a real bash subprocess. Nothing here touches the network: the real downloads
are pointed at a local `file://` mirror of small zips laid out like the official archives.
"""

import os
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from butd.cache.manifest import CacheError, raw_files
from butd.config.data import DataConfig
from butd.preparation import sources
from butd.preparation.build import prepare, prepared_cache
from butd.preparation.sources import (
    ARCHIVES,
    GROUPS,
    HOSTS,
    PLAIN_FILES,
    SOURCES,
    format_mb,
    groups,
    how_to_get,
)
from tests.conftest import CONF_DIR, REPO, compose_train

SCRIPT = REPO / "scripts" / "download_vqa2.sh"
DATA_CONFIGS = ("vqa2", "vqa2_test", "vqa2_adaptive", "vqa2_vg")
BASH = shutil.which("bash")
needs_tools = pytest.mark.skipif(
    not (BASH and shutil.which("curl") and shutil.which("unzip")), reason="needs bash, curl and unzip"
)


@pytest.fixture(autouse=True)
def _default_mirrors(monkeypatch):
    """Every test starts from the default base URLs and the default data dir."""
    for env, _ in HOSTS.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("BUTD_DATA_DIR", raising=False)


def _script_table() -> dict[str, dict]:
    """The script's archive table: archive name -> group, url, zip MB, {dest: (member, MB)}."""
    text = SCRIPT.read_text()
    bases = dict(re.findall(r'^(\w+_URL)="\$\{BUTD_\w+_URL:-([^}]+)\}"$', text, re.M))
    joined = re.sub(r"\\\n\s*", " ", text)
    table = {}
    for group, var, name, mb, files in re.findall(
        r'^add_archive (\w+) "\$(\w+)/([^"]+)" (\d+) (.+)$', joined, re.M
    ):
        entries = {}
        for spec in files.split():
            member_dest, size = spec.rsplit(":", 1)
            member, _, dest = member_dest.partition("=")
            entries[dest or member] = (member, int(size))
        table[name] = {"group": group, "url": f"{bases[var]}/{name}", "mb": int(mb), "files": entries}
    return table


def _sources_table() -> dict[str, dict]:
    return {
        a.name: {
            "group": a.group,
            "url": a.url,
            "mb": a.download_mb,
            "files": {s.path: (s.member, s.unpacked_mb) for s in SOURCES.values() if s.archive == a},
        }
        for a in ARCHIVES
    }


def _data_config(name: str, tmp: Path) -> DataConfig:
    """`data=NAME` as Hydra composes it (the structured base and the YAML files it inherits)."""
    return DataConfig.from_dict(compose_train([f"data={name}"], data_dir=tmp, output_dir=tmp / "run").data)


def _config_raw_files(name: str, tmp: Path) -> set[str]:
    cfg = _data_config(name, tmp)
    return {str(p.relative_to(cfg.raw_path)) for p in raw_files(cfg)}


def _run(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH or "bash", str(SCRIPT), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---------------------------------------------------------------------------------------------
# The table


def test_script_and_sources_list_the_same_archives_urls_files_and_sizes():
    script, table = _script_table(), _sources_table()
    assert len(script) == len(ARCHIVES) == 12
    assert script == table
    # every URL in the script is one of the table's, and the other way round
    urls = set(re.findall(r"https?://\S+?(?=[\"}\s])", SCRIPT.read_text()))
    assert {base for _, base in HOSTS.values()} == urls


def test_script_groups_are_the_sources_groups_in_order():
    order = re.search(r"^GROUP_ORDER=\(([^)]*)\)", SCRIPT.read_text(), re.M).group(1).split()
    assert order == list(GROUPS) == [g.name for g in groups()]
    assert {a.group for a in ARCHIVES} | {f.group for f in PLAIN_FILES.values()} == set(GROUPS)


def test_every_raw_file_of_the_vqa2_configs_has_a_source(tmp_path):
    wanted = {name: _config_raw_files(name, tmp_path) for name in DATA_CONFIGS}
    assert all(wanted.values())
    for name, files in wanted.items():
        assert files <= set(SOURCES), f"conf/data/{name}.yaml: no source for {files - set(SOURCES)}"
    # the adaptive set reads the four TSVs of trainval.zip and the inherited vqa2 text files
    adaptive = yaml.safe_load((CONF_DIR / "data" / "vqa2_adaptive.yaml").read_text())
    assert adaptive["defaults"] == ["vqa2", "_self_"]
    assert {SOURCES[f].archive.name for f in adaptive["features"]} == {"trainval.zip"}
    assert len(adaptive["features"]) == 4
    assert (adaptive["boxes"], adaptive["num_boxes"], adaptive["min_boxes"]) == ("adaptive", 100, 10)
    assert adaptive["cache_dir"] == "${paths.data_dir}/vqa2/cache_adaptive"


def test_groups_add_up():
    by_name = {g.name: g for g in groups()}
    assert [a.name for a in by_name["questions"].archives] == [
        "v2_Questions_Train_mscoco.zip",
        "v2_Questions_Val_mscoco.zip",
        "v2_Questions_Test_mscoco.zip",
    ]
    f36 = by_name["features36"]
    assert (f36.download_mb, f36.unpacked_mb, f36.disk_mb) == (25000, 49000, 74000)
    assert sum(len(g.files) for g in groups()) == len(SOURCES)


def test_how_to_get_names_the_command_archive_url_and_size():
    line = how_to_get("trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv")
    assert line == (
        "`bash scripts/download_vqa2.sh features36` (trainval_36.zip from "
        "https://imagecaption.blob.core.windows.net/imagecaption/trainval_36.zip, about 25 GB)"
    )
    assert how_to_get(Path("./glove/glove.6B.300d.txt")).startswith("`bash scripts/download_vqa2.sh glove`")
    assert "v2_Questions_Test_mscoco.zip" in how_to_get("v2_OpenEnded_mscoco_test-dev2015_questions.json")
    assert how_to_get("my_features.tsv") == "not an official file: check data.raw_dir and the data config"


def test_how_to_get_follows_the_raw_dir_and_the_mirror(monkeypatch, tmp_path):
    name = "test2015/test2015_resnet101_faster_rcnn_genome.tsv"
    assert "--raw-dir" not in how_to_get(name, raw_dir="data/vqa2/raw")
    assert f"test_adaptive --raw-dir {tmp_path}`" in how_to_get(name, raw_dir=tmp_path)
    monkeypatch.setenv("BUTD_FEATURES_URL", "https://mirror.example/bu/")
    assert "from https://mirror.example/bu/test2015.zip," in how_to_get(name)
    monkeypatch.setenv("BUTD_DATA_DIR", str(tmp_path))
    assert "--raw-dir" not in how_to_get(name, raw_dir=tmp_path / "vqa2" / "raw")


def test_format_mb():
    assert [format_mb(x) for x in (7, 862, 1040, 25000)] == [
        "about 7 MB",
        "about 862 MB",
        "about 1.0 GB",
        "about 25 GB",
    ]


# ---------------------------------------------------------------------------------------------
# The script as a subprocess, without network


def test_script_syntax():
    assert BASH, "bash is needed to run the download script"
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True)


def test_no_argument_prints_the_groups_and_their_sizes():
    run = _run()
    assert run.returncode == 0, run.stderr
    lines = {
        line.split()[0]: line for line in run.stdout.splitlines() if line.startswith("  ") and line.split()
    }
    for g in groups():
        assert g.name in lines
        for mb in (g.download_mb, g.unpacked_mb, g.disk_mb):
            assert format_mb(mb) in lines[g.name], (g.name, mb, lines[g.name])
    assert "all" in lines and "--keep-zips" in run.stdout and "--dry-run" in run.stdout


def test_unknown_argument_is_refused():
    run = _run("features", "--dry-run")
    assert run.returncode == 2
    assert "unknown argument 'features'" in run.stderr
    assert _run("--dry-run").returncode != 0  # flags but no group


def _stand_ins(bin_dir: Path, **scripts: str) -> dict[str, str]:
    """Executables in `bin_dir` that shadow the real ones; returns the env that puts them first."""
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_dry_run_lists_every_archive_and_writes_nothing(tmp_path):
    raw = tmp_path / "raw"
    called = tmp_path / "called"
    # downloaders and unzip that leave a trace if the dry run ever calls them
    env = _stand_ins(
        tmp_path / "bin", **{n: f"echo {n} >> {called}; exit 1" for n in ("curl", "wget", "unzip")}
    )
    run = _run("--dry-run", "all", "--raw-dir", str(raw), env=env)
    assert run.returncode == 0, run.stderr
    for archive in ARCHIVES:
        assert f"would download {archive.url}\n" in run.stdout
        assert f"-> {raw}/downloads/{archive.name} ({format_mb(archive.download_mb)})" in run.stdout
    for source in SOURCES.values():
        assert f"unpack {source.member} -> {raw}/{source.path} " in run.stdout
    assert not raw.exists() and not called.exists()


# ---------------------------------------------------------------------------------------------
# Real runs against a local mirror


def _content(source) -> bytes:
    return f"{source.path}\n".encode() * 3000


def _mirror(root: Path) -> Path:
    """Small zips named and laid out like the official archives (plus a file butd does not need)."""
    root.mkdir()
    for archive in ARCHIVES:
        with zipfile.ZipFile(root / archive.name, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for s in SOURCES.values():
                if s.archive == archive:
                    z.writestr(s.member, _content(s))
            z.writestr("README.txt", b"not needed\n")
    return root


#: a stand-in `df` (POSIX output, 1024-byte blocks) reporting 1 PB free under any folder
PLENTY_OF_SPACE_DF = (
    "echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'; "
    "echo '/dev/x 1099511627776 1 1099511627775 1% /'"
)


def _mirror_env(mirror: Path) -> dict[str, str]:
    """The mirror's URLs, and a `df` that reports plenty of space: the script checks free space
    against the real archives' sizes (74 GB for features36), not the mirror's small zips, and
    these runs must not depend on the machine's free disk space (the check itself is tested in
    test_too_little_disk_space_stops_before_downloading, with its own `df`)."""
    return {
        **{env: mirror.as_uri() for env, _ in HOSTS.values()},
        **_stand_ins(mirror.parent / "plenty-of-space-bin", df=PLENTY_OF_SPACE_DF),
    }


def _group_files(*names: str):
    return [s for s in SOURCES.values() if s.group in names]


@pytest.mark.slow
@needs_tools
def test_download_unpacks_only_the_needed_files_and_a_rerun_fetches_nothing(tmp_path):
    mirror, raw = _mirror(tmp_path / "mirror"), tmp_path / "raw"
    run = _run("questions", "glove", "features36", "--raw-dir", str(raw), env=_mirror_env(mirror))
    assert run.returncode == 0, run.stderr
    for s in _group_files("questions", "glove", "features36"):
        assert (raw / s.path).read_bytes() == _content(s)
    assert not (raw / "README.txt").exists() and not (raw / "glove" / "README.txt").exists()
    downloads = raw / "downloads"
    # zips deleted by default; one marker per archive, with the sizes
    assert sorted(p.name for p in downloads.iterdir()) == sorted(
        f"{a.name}.done" for a in ARCHIVES if a.group in ("questions", "glove", "features36")
    )
    marker = (downloads / "glove.6B.zip.done").read_text()
    assert marker == f"glove/glove.6B.300d.txt\t{len(_content(SOURCES['glove/glove.6B.300d.txt']))}\n"
    assert "present" in run.stdout and "glove/glove.6B.300d.txt" in run.stdout.split("raw files under")[1]

    # no mirror any more: a second run must not need the network
    shutil.rmtree(mirror)
    again = _run("questions", "glove", "features36", "--raw-dir", str(raw), env=_mirror_env(mirror))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("nothing to fetch") == 5
    assert "MISSING" not in again.stdout


@pytest.mark.slow
@needs_tools
def test_a_file_of_the_wrong_size_is_fetched_again_and_zips_can_be_kept(tmp_path):
    mirror, raw = _mirror(tmp_path / "mirror"), tmp_path / "raw"
    env = _mirror_env(mirror)
    assert _run("annotations", "--raw-dir", str(raw), env=env).returncode == 0
    target = raw / "v2_mscoco_val2014_annotations.json"
    target.write_bytes(b"truncated")
    run = _run("annotations", "--keep-zips", "--raw-dir", str(raw), env=env)
    assert run.returncode == 0, run.stderr
    assert "v2_Annotations_Train_mscoco.zip: files in place" in run.stdout
    assert "v2_Annotations_Val_mscoco.zip: downloading" in run.stdout
    assert target.read_bytes() == _content(SOURCES[target.name])
    assert (raw / "downloads" / "v2_Annotations_Val_mscoco.zip").is_file()
    assert "zip kept" in run.stdout


@pytest.mark.slow
@needs_tools
def test_an_interrupted_download_continues_where_it_stopped(tmp_path):
    mirror, raw = _mirror(tmp_path / "mirror"), tmp_path / "raw"
    name = "trainval.zip"
    original = (mirror / name).read_bytes()
    half = len(original) // 2
    # the first half is already here; the mirror's first half is garbage, so only a download
    # that continues from the partial file (rather than starting over) ends with a valid zip
    (raw / "downloads").mkdir(parents=True)
    (raw / "downloads" / f"{name}.part").write_bytes(original[:half])
    (mirror / name).write_bytes(b"\0" * half + original[half:])
    run = _run("adaptive", "--raw-dir", str(raw), env=_mirror_env(mirror))
    assert run.returncode == 0, run.stderr
    assert "resuming the download" in run.stdout
    for s in _group_files("adaptive"):
        assert (raw / s.path).read_bytes() == _content(s)
    assert not (raw / "downloads" / f"{name}.part").exists()


@pytest.mark.slow
@needs_tools
def test_too_little_disk_space_stops_before_downloading(tmp_path):
    mirror, raw = _mirror(tmp_path / "mirror"), tmp_path / "raw"
    # a stand-in df reporting 1 MB free
    df = "echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'; echo '/dev/x 9 8 1000 99% /'"
    env = {**_mirror_env(mirror), **_stand_ins(tmp_path / "bin", df=df)}
    run = _run("features36", "--raw-dir", str(raw), env=env)
    assert run.returncode == 1
    assert "not enough free disk space for trainval_36.zip" in run.stderr
    assert "about 74 GB" in run.stderr and "--no-space-check" in run.stderr
    assert list((raw / "downloads").iterdir()) == []
    # the check can be skipped (the mirror's zip is small)
    assert _run("features36", "--no-space-check", "--raw-dir", str(raw), env=env).returncode == 0


# ---------------------------------------------------------------------------------------------
# The entry points' and prepare's errors say how to get each missing file


def _vqa2_config(tmp_path: Path) -> DataConfig:
    cfg = _data_config("vqa2", tmp_path)
    (tmp_path / "vqa2" / "raw").mkdir(parents=True)
    return cfg


@pytest.mark.parametrize("step", [prepared_cache, prepare])  # an entry point without a cache, prepare
def test_missing_raw_files_are_named_with_the_download_command(tmp_path, step):
    cfg = _vqa2_config(tmp_path)
    with pytest.raises(CacheError) as err:
        step(cfg)
    msg = str(err.value)
    lines = msg.splitlines()
    files = _config_raw_files("vqa2", tmp_path)
    assert len(files) == 8
    for name in files:
        source = SOURCES[name]
        i = lines.index(f"  - {cfg.raw_path / name}")
        assert lines[i + 1] == f"    get it: {how_to_get(name, cfg.raw_path)}"
        assert f"`bash scripts/download_vqa2.sh {source.group} --raw-dir {cfg.raw_path}`" in lines[i + 1]
        assert source.archive.name in lines[i + 1]
    everything = (
        f"bash scripts/download_vqa2.sh questions annotations features36 glove --raw-dir {cfg.raw_path}"
    )
    assert everything in msg


def test_sources_module_names_the_script_that_exists():
    assert (REPO / sources.SCRIPT) == SCRIPT and SCRIPT.is_file()


def test_vqacp2_raw_files_are_the_four_vqacp_files_and_glove(tmp_path):
    # the features are read from data=vqa2's cache (data.features_from), not from the TSV
    files = _config_raw_files("vqacp2", tmp_path)
    assert files == set(PLAIN_FILES) | {"glove/glove.6B.300d.txt"}
    line = how_to_get("vqacp_v2_test_annotations.json", tmp_path)
    assert line == (
        f"`bash scripts/download_vqa2.sh vqacp --raw-dir {tmp_path}` "
        "(https://computing.ece.vt.edu/~aish/vqacp/vqacp_v2_test_annotations.json, about 180 MB)"
    )


def test_script_and_sources_list_the_same_plain_files():
    joined = SCRIPT.read_text()
    script = {
        name: (group, int(mb))
        for group, name, mb in re.findall(r'^add_file (\w+) "\$VQACP_URL/([^"]+)" (\d+)$', joined, re.M)
    }
    assert script == {f.path: (f.group, f.mb) for f in PLAIN_FILES.values()}
    assert len(script) == 4


@needs_tools
def test_the_vqacp_group_fetches_the_four_files_and_refuses_an_error_page(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in PLAIN_FILES:
        (mirror / name).write_text('[{"question_id": 1}]')
    raw = tmp_path / "raw"
    run = _run("vqacp", "--raw-dir", str(raw), env={"BUTD_VQACP_URL": f"file://{mirror}"})
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in raw.glob("*.json")) == sorted(PLAIN_FILES)
    assert "present" in run.stdout and "MISSING" not in run.stdout
    again = _run("vqacp", "--raw-dir", str(raw), env={"BUTD_VQACP_URL": f"file://{mirror}"})
    assert again.stdout.count("in place, nothing to fetch") == 4
    (raw / "vqacp_v2_test_questions.json").unlink()
    (mirror / "vqacp_v2_test_questions.json").write_text("<html>moved</html>")
    bad = _run("vqacp", "--raw-dir", str(raw), env={"BUTD_VQACP_URL": f"file://{mirror}"})
    assert bad.returncode == 1
    assert "vqacp_v2_test_questions.json did not return a JSON list" in bad.stderr
    assert not (raw / "vqacp_v2_test_questions.json").exists()
