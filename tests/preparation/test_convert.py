"""The feature conversion: parallel equals in-process, resumes after a stop, bad input is named."""

import json

import h5py
import numpy as np
import pytest

from butd.cache.load import load_cache
from butd.cache.manifest import MANIFEST, CacheError
from butd.config.data import DataConfig
from butd.preparation.build import prepare
from butd.preparation.convert import STATE, BoxSpec, ConversionError, convert_features, splits_of_images
from butd.vqa.features import iter_tsv, parse_row
from tests.conftest import TINY_ADAPTIVE, TINY_DATA, compose_train

#: a few rows per work unit, so the tiny files make many units
SMALL_CHUNKS = "data.prepare_chunk_mb=0.004"


def _cfg(data_dir, *overrides) -> DataConfig:
    cfg = compose_train([*TINY_DATA, *overrides], data_dir=data_dir, output_dir=data_dir / "x")
    return DataConfig.from_dict(cfg.data)


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return out


def _assert_same_files(a_dir, b_dir, splits) -> None:
    for s in splits:
        a, b = _datasets(a_dir / f"{s}.h5"), _datasets(b_dir / f"{s}.h5")
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{s}.h5 {name}")


def _corrupt_line(tsv, line_no: int) -> int:
    """Replace the features of row `line_no` with text that is not base64; returns its image id."""
    lines = tsv.read_bytes().split(b"\n")
    fields = lines[line_no - 1].split(b"\t")
    fields[5] = b"@@not-base64@@" + fields[5][14:]
    lines[line_no - 1] = b"\t".join(fields)
    tsv.write_bytes(b"\n".join(lines))
    return int(fields[0])


@pytest.mark.slow
def test_parallel_conversion_equals_in_process(data_copy):
    one = _cfg(data_copy, "data.prepare_workers=0", SMALL_CHUNKS)
    two = _cfg(data_copy, "data.prepare_workers=2", SMALL_CHUNKS, f"data.cache_dir={data_copy}/cache2")
    prepare(one, force=True, progress=False)
    info = prepare(two, force=True, progress=False)
    assert info.manifest.conversion["chunks"] > 10  # really cut into many units
    _assert_same_files(one.cache_path, two.cache_path, one.prepare_splits)


def test_bad_row_stops_with_its_location_and_a_rerun_continues(data_copy):
    cfg = _cfg(data_copy, SMALL_CHUNKS)
    before = _datasets(cfg.cache_path / "val.h5")
    tsv = cfg.raw_path / cfg.features[0]
    image_id = _corrupt_line(tsv, 30)

    with pytest.raises(ConversionError) as err:
        prepare(cfg, force=True, progress=False)
    msg = str(err.value)
    assert f"synthetic_trainval_6.tsv:30: image {image_id}: boxes/features are not base64" in msg
    assert "data.skip_bad_rows=true" in msg and "converted so far are kept" in msg
    # the earlier cache is unchanged on disk, and refused: its feature file changed (to the same size)
    with pytest.raises(CacheError, match=r"synthetic_trainval_6\.tsv has changed .*same size"):
        load_cache(cfg)
    # and the conversion's progress is on disk
    np.testing.assert_array_equal(
        _datasets(cfg.cache_path / "val.h5")["images/features"], before["images/features"]
    )
    state = json.loads((cfg.cache_path / STATE).read_text())
    assert state["next_chunk"] > 0

    skip = _cfg(data_copy, SMALL_CHUNKS, "data.skip_bad_rows=true")
    info = prepare(skip, force=True, progress=False)  # continues the stopped conversion
    assert info.manifest.conversion["resumed_from_chunk"] == state["next_chunk"]
    assert info.counts.skipped_rows == 1
    assert f"image {image_id}" in info.counts.skipped_examples[0]
    split = next(s for s, c in info.counts.splits.items() if c.images_without_features)
    assert info.counts.splits[split].images_without_features_examples == [image_id]
    assert info.counts.splits[split].dropped_questions == 4  # questions_per_image
    assert not (cfg.cache_path / STATE).exists() and not list(cfg.cache_path.glob("*.partial"))

    # the resumed cache is the cache a fresh run makes
    fresh = _cfg(data_copy, SMALL_CHUNKS, "data.skip_bad_rows=true", f"data.cache_dir={data_copy}/fresh")
    prepare(fresh, progress=False)
    _assert_same_files(cfg.cache_path, fresh.cache_path, cfg.prepare_splits)


@pytest.mark.slow
def test_interrupted_conversion_resumes_to_the_same_files(data_copy, tmp_path):
    cfg = _cfg(data_copy)
    paths = [cfg.raw_path / f for f in cfg.features]
    wanted = splits_of_images({"a": range(0, 10**6, 2), "b": range(0, 10**6, 3)})
    args = dict(boxes=BoxSpec(num_boxes=6), settings={"k": 1}, workers=0, chunk_bytes=4096)

    def stop_after(n):
        calls = []

        def progress(done, total, note):
            calls.append(done)
            if len(calls) == n:
                raise KeyboardInterrupt

        return progress

    out = tmp_path / "resumed"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        convert_features(paths, out, wanted, progress=stop_after(4), **args)
    result = convert_features(paths, out, wanted, **args)
    assert result.resumed_from_chunk == 4
    for w in result.writers.values():
        w.finish()
        w.close()

    whole = tmp_path / "whole"
    whole.mkdir()
    result = convert_features(paths, whole, wanted, **args)
    assert result.resumed_from_chunk == 0
    for w in result.writers.values():
        w.finish()
        w.close()
    for s in ("a", "b"):
        a, b = _datasets(out / f"{s}.h5.partial"), _datasets(whole / f"{s}.h5.partial")
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)

    # other settings: the partial conversion is discarded, not mixed in
    again = convert_features(paths, out, wanted, **{**args, "settings": {"k": 2}})
    assert again.resumed_from_chunk == 0
    for w in again.writers.values():
        w.close()


def test_adaptive_boxes_are_stored_with_their_counts(tiny_adaptive_dir, tmp_path):
    cfg = DataConfig.from_dict(
        compose_train(TINY_ADAPTIVE, data_dir=tiny_adaptive_dir, output_dir=tmp_path / "x").data
    )
    info = load_cache(cfg)
    rows = {}
    for _, line in iter_tsv(cfg.raw_path / cfg.features[0]):
        item = parse_row(line)
        rows[item.image_id] = item
    assert len({len(r.boxes) for r in rows.values()}) > 3  # the counts really vary
    with h5py.File(info.split_path("train")) as f:
        offsets, ids = f["images/box_offsets"][:], f["images/image_id"][:]
        np.testing.assert_array_equal(np.diff(offsets), f["images/counts"][:])
        assert f["images/features"].shape[0] == offsets[-1]
        for r in (0, len(ids) // 2, len(ids) - 1):
            item = rows[int(ids[r])]
            np.testing.assert_allclose(
                f["images/features"][offsets[r] : offsets[r + 1]], item.features, atol=1e-2
            )
            np.testing.assert_array_equal(f["images/boxes"][offsets[r] : offsets[r + 1]], item.boxes)
    stats = info.counts.splits["train"].boxes
    assert 4 <= stats.min < stats.max <= 12

    # the same files under a fixed-box config: the first row that differs is named, with the fix
    fixed = DataConfig.from_dict(
        compose_train(
            [*TINY_ADAPTIVE, "data.boxes=fixed", f"data.cache_dir={tmp_path}/fixed"],
            data_dir=tiny_adaptive_dir,
            output_dir=tmp_path / "x",
        ).data
    )
    with pytest.raises(
        ConversionError,
        match=r"synthetic_trainval_12.tsv:\d+: image \d+: has \d+ boxes but "
        r"data.num_boxes=12 \(fixed\).*data.boxes=adaptive",
    ):
        prepare(fixed, progress=False)


def test_questions_and_annotations_that_disagree_are_refused(data_copy):
    cfg = _cfg(data_copy)
    path = cfg.raw_path / cfg.annotations["val"]
    content = json.loads(path.read_text())
    dropped = [a["question_id"] for a in content["annotations"][:2]]
    content["annotations"] = content["annotations"][2:]
    content["annotations"][0]["image_id"] += 1
    path.write_text(json.dumps(content))
    with pytest.raises(CacheError) as err:
        prepare(cfg, force=True, progress=False)
    msg = str(err.value)
    assert "v2_OpenEnded_mscoco_val2014_questions.json (64 questions)" in msg
    assert "v2_mscoco_val2014_annotations.json (62 annotations) disagree" in msg
    assert f"2 questions have no annotation (question_id {dropped[0]}, {dropped[1]})" in msg
    assert "1 questions have another image_id" in msg
    assert not list(cfg.cache_path.glob("*.partial"))  # refused before any conversion


def test_truncated_or_old_caches_are_refused_with_the_reason(data_copy):
    cfg = _cfg(data_copy)
    val = cfg.cache_path / "val.h5"
    size = val.stat().st_size
    with open(val, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(CacheError, match=rf"val.h5 is {size // 2:,} bytes but was {size:,} .*truncated"):
        load_cache(cfg)

    manifest = json.loads((cfg.cache_path / MANIFEST).read_text())
    manifest["format_version"] = 2
    (cfg.cache_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match="format version 2, this butd reads version 3 .*force=true"):
        load_cache(cfg)


def test_vocabulary_from_train_only_needs_the_unknown_token(data_copy):
    cfg = _cfg(data_copy, "data.vocab_splits=[train]", f"data.cache_dir={data_copy}/train_vocab")
    path = cfg.raw_path / cfg.questions["val"]
    content = json.loads(path.read_text())
    content["questions"][0]["question"] = "Is the zebra red?"
    path.write_text(json.dumps(content))
    with pytest.raises(CacheError, match=r"split 'val' has the word 'zebra'.*data.unknown_token=UNK"):
        prepare(cfg, progress=False)

    unk = _cfg(
        data_copy, "data.vocab_splits=[train]", "data.unknown_token=UNK", f"data.cache_dir={data_copy}/unk"
    )
    info = prepare(unk, progress=False)
    vocab = info.vocabulary()
    assert vocab.idx2word[-1] == "UNK" and "zebra" not in vocab
    with h5py.File(info.split_path("val")) as f:
        row = list(f["questions/question_id"][:]).index(content["questions"][0]["question_id"])
        tokens = [int(t) for t in f["questions/tokens"][row] if t != vocab.padding_idx]
        assert tokens == [
            vocab.word2idx["is"],
            vocab.word2idx["the"],
            vocab.unknown_idx,
            vocab.word2idx["red"],
        ]
