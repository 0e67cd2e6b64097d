"""Bad raw input, written into real raw files as a user's damaged download would hold it: each is
named where it enters (file, line, image or question id), or handled as documented."""

import base64
import json
import re

import h5py
import numpy as np
import pytest

from butd.errors import UserError
from butd.preparation.build import prepare
from butd.vqa.features import CLIP_TOLERANCE
from tests.preparation.test_convert import _cfg


def _b64(a: np.ndarray) -> bytes:
    return base64.b64encode(np.ascontiguousarray(a, np.float32).tobytes())


def _rewrite_row(tsv, line_no: int, *, size=None, boxes=None, features=None) -> int:
    """Row `line_no` of the TSV with another image size, boxes or features; returns its image id."""
    lines = tsv.read_bytes().split(b"\n")
    fields = lines[line_no - 1].split(b"\t")
    if size is not None:
        fields[1], fields[2] = (str(v).encode() for v in size)
    if boxes is not None:
        fields[4] = _b64(boxes)
    if features is not None:
        fields[3], fields[5] = str(features.shape[0]).encode(), _b64(features)
    lines[line_no - 1] = b"\t".join(fields)
    tsv.write_bytes(b"\n".join(lines))
    return int(fields[0])


def _row(tsv, line_no: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    fields = tsv.read_bytes().split(b"\n")[line_no - 1].split(b"\t")
    n = int(fields[3])
    boxes = np.frombuffer(base64.b64decode(fields[4]), np.float32).reshape(n, 4)
    feats = np.frombuffer(base64.b64decode(fields[5]), np.float32).reshape(n, -1)
    return float(fields[1]), float(fields[2]), boxes.copy(), feats.copy()


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda w, h, b: {"size": (float("inf"), h)}, r"size infx[0-9.]+ \(positive and finite needed\)"),
        (lambda w, h, b: {"size": (w, float("nan"))}, r"xnan \(positive and finite needed\)"),
        (lambda w, h, b: {"boxes": np.where(np.arange(b.size).reshape(b.shape) == 5, np.nan, b)},
         r"box 1 is .*NaN or Inf coordinates"),
        (lambda w, h, b: {"boxes": b[:, [2, 1, 0, 3]] + [[1, 0, 0, 0]]}, r"box 0 is .*x2 < x1"),
    ],
    ids=["width inf", "height nan", "box nan", "box inverted"],
)  # fmt: skip
def test_non_finite_sizes_and_boxes_are_refused_with_file_line_and_image(data_copy, change, reason):
    cfg = _cfg(data_copy)
    tsv = cfg.raw_path / cfg.features[0]
    w, h, boxes, _ = _row(tsv, 7)
    image_id = _rewrite_row(tsv, 7, **change(w, h, boxes))
    with pytest.raises(UserError) as err:
        prepare(cfg, force=True, progress=False)
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"{tsv}:7: image {image_id}: ")
    assert re.search(reason, first), first


def test_boxes_outside_the_image_are_clipped_and_counted(data_copy):
    cfg = _cfg(data_copy)
    tsv = cfg.raw_path / cfg.features[0]
    w, h, boxes, _ = _row(tsv, 3)
    boxes[0] = [-40, -5, w + 30, h + CLIP_TOLERANCE / 2]  # far outside on three sides, not on the fourth
    boxes[1, 2] = w + CLIP_TOLERANCE / 2  # within the tolerance: kept as it is
    image_id = _rewrite_row(tsv, 3, boxes=boxes)
    info = prepare(cfg, force=True, progress=False)
    assert info.counts.clipped_boxes == 1
    assert info.counts.clipped_examples == [f"{tsv}:3: image {image_id}, 1 boxes"]
    for split in cfg.prepare_splits:
        with h5py.File(info.split_path(split)) as f:
            ids = f["images/image_id"][:]
            if image_id not in ids:
                continue
            row = int(np.flatnonzero(ids == image_id)[0])
            start = int(f["images/box_offsets"][row])
            stored = f["images/boxes"][start : start + 2]
            spatial = f["images/spatial"][start]
    np.testing.assert_array_equal(stored[0], np.float32([0, 0, w, h]))
    np.testing.assert_array_equal(stored[1], boxes[1])
    assert spatial.min() >= 0 and spatial.max() <= 1


def test_a_bad_first_row_does_not_set_the_feature_size(data_copy):
    """The size comes from most rows of the first block: the bad first row is the one named."""
    cfg = _cfg(data_copy)
    tsv = cfg.raw_path / cfg.features[0]
    _, _, _, feats = _row(tsv, 1)
    image_id = _rewrite_row(tsv, 1, features=feats[:, :-3])
    with pytest.raises(UserError) as err:
        prepare(cfg, force=True, progress=False)
    dim = feats.shape[1]
    assert str(err.value).startswith(f"{tsv}:1: image {image_id}: features hold {feats[:, :-3].size} floats")
    assert f"x {dim} (data.feature_dim, or the size most rows" in str(err.value)

    info = prepare(_cfg(data_copy, "data.skip_bad_rows=true"), force=True, progress=False)
    assert info.counts.skipped_rows == 1 and info.feature_dim == dim
    assert info.counts.skipped_examples[0].startswith(f"{tsv}:1: image {image_id}")


def test_the_feature_size_from_the_config_wins_and_is_checked_on_load(data_copy):
    cfg = _cfg(data_copy)
    tsv = cfg.raw_path / cfg.features[0]
    dim = _row(tsv, 1)[3].shape[1]
    wrong = rf"{tsv}:1: image \d+: features hold .* x {dim + 1} \(data.feature_dim"
    with pytest.raises(UserError, match=wrong):
        prepare(_cfg(data_copy, f"data.feature_dim={dim + 1}"), force=True, progress=False)
    prepare(_cfg(data_copy, f"data.feature_dim={dim}"), progress=False)
    from butd.cache.load import load_cache

    with pytest.raises(UserError, match=rf"holds {dim} floats per box feature, data.feature_dim={dim * 2}"):
        load_cache(_cfg(data_copy, f"data.feature_dim={dim * 2}"))
    with pytest.raises(UserError, match=r"data.feature_dim=0 is invalid"):
        _cfg(data_copy, "data.feature_dim=0")


def _edit_json(path, key: str, edit) -> dict:
    content = json.loads(path.read_text(encoding="utf-8"))
    edit(content[key])
    path.write_text(json.dumps(content), encoding="utf-8")
    return content


def _duplicate(qs):
    qs[5]["question_id"] = qs[2]["question_id"]


def _fraction(qs):
    qs[4]["question_id"] += 0.5


def _nul(qs):
    qs[3]["question"] = "what color\x00 is the cube?"


@pytest.mark.parametrize(
    "edit, message",
    [
        (_duplicate, r"questions\.json: question_id (\d+) appears 2 times \(questions\[2, 5\]\)"),
        (_fraction, r"questions\.json: questions\[4\] \(question_id \d+\.5\): "
                    r"question_id is \d+\.5, not an integer"),
        (_nul, r"questions\.json: questions\[3\] \(question_id \d+\): "
               r"the question holds the control character '\\x00' at position 10"),
    ],
    ids=["duplicate id", "fractional id", "NUL"],
)  # fmt: skip
def test_bad_questions_are_refused_where_they_enter(data_copy, edit, message):
    cfg = _cfg(data_copy)
    _edit_json(cfg.raw_path / cfg.questions["train"], "questions", edit)
    with pytest.raises(UserError, match=message):
        prepare(cfg, force=True, progress=False)


def test_non_utf8_questions_name_the_line_and_byte(data_copy):
    cfg = _cfg(data_copy)
    path = cfg.raw_path / cfg.questions["val"]
    data = path.read_bytes()
    at = data.index(b'"question": "') + len(b'"question": "')
    path.write_bytes(data[:at] + b"\xff" + data[at:])
    line = data.count(b"\n", 0, at) + 1
    with pytest.raises(UserError, match=rf"questions\.json:{line}: byte {at:,} \(b'\\xff'\) is not UTF-8"):
        prepare(cfg, force=True, progress=False)


def test_an_annotation_with_nine_answers_is_blamed_on_its_own_question(data_copy):
    cfg = _cfg(data_copy)
    path = cfg.raw_path / cfg.annotations["train"]
    content = _edit_json(path, "annotations", lambda anns: anns[0]["answers"].pop())
    qid = content["annotations"][0]["question_id"]
    blame = rf"annotations\[0\] \(question_id {qid}\): 9 annotator answers, .* have 10"
    with pytest.raises(UserError, match=blame):
        prepare(cfg, force=True, progress=False)


def test_glove_values_must_be_finite_and_the_file_utf8(data_copy):
    cfg = _cfg(data_copy)
    path = cfg.raw_path / cfg.glove
    lines = path.read_bytes().split(b"\n")
    parts = lines[2].split(b" ")  # a word the vocabulary has: the synthetic GloVe lists only those
    parts[3] = b"nan"
    path.write_bytes(b"\n".join([*lines[:2], b" ".join(parts), *lines[3:]]))
    with pytest.raises(UserError, match=rf"{path}:3: value 3 of the vector is 'nan', not a finite float32"):
        prepare(cfg, force=True, progress=False)

    path.write_bytes(b"\n".join([*lines[:4], b"caf\xe9 " + lines[4].split(b" ", 1)[1], *lines[5:]]))
    with pytest.raises(UserError, match=rf"{path}:5: byte 3 of the line \(b'\\xe9'\) is not UTF-8"):
        prepare(cfg, force=True, progress=False)
