"""Bottom-up feature TSV rows: decoding, and the spatial features derived from boxes.

A row of the official TSV is `image_id, image_w, image_h, num_boxes, boxes, features`,
tab-separated, where the last two are base64 of float32 arrays [num_boxes, 4] and
[num_boxes, feature_dim]. The 36-box sets have the same count on every row; the adaptive sets
have 10 to 100. Rows are decoded one at a time, so a file of any size streams
(`butd.preparation.convert` spreads them over processes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from butd.errors import UserError

TSV_FIELDS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")


class FeatureFileError(UserError, ValueError):
    """A feature TSV row that cannot be decoded; the message names the file and line."""


class BadRow(ValueError):
    """Why one row cannot be used, without its location (the caller knows file and line).

    `image_id` is None when the row is too damaged to read it.
    """

    def __init__(self, reason: str, image_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.image_id = image_id

    def located(self, path: Path | str, line_no: int) -> str:
        image = f"image {self.image_id}: " if self.image_id is not None else ""
        return f"{path}:{line_no}: {image}{self.reason}"


@dataclass
class ImageFeatures:
    image_id: int
    width: float
    height: float
    boxes: np.ndarray  # [num_boxes, 4] float32, x1 y1 x2 y2 in pixels
    features: np.ndarray  # [num_boxes, feature_dim] float32
    clipped: int = 0  # boxes that reached outside the image and were clipped to it


def spatial_features(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Box geometry relative to the image: x1/w, y1/h, x2/w, y2/h, bw/w, bh/h.

    boxes: [k, 4] -> [k, 6] float32.
    """
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    out = np.stack(
        [x1 / width, y1 / height, x2 / width, y2 / height, (x2 - x1) / width, (y2 - y1) / height],
        axis=1,
    )
    return out.astype(np.float32)


#: how far (in pixels) a box may reach outside its image before it is clipped and counted;
#: detectors' boxes end a fraction of a pixel outside by rounding
CLIP_TOLERANCE = 1.0


def check_boxes(boxes: np.ndarray, width: float, height: float, image_id: int) -> tuple[np.ndarray, int]:
    """Boxes [k, 4] with those reaching more than `CLIP_TOLERANCE` outside the image clipped to
    it, and how many were clipped.

    Non-finite coordinates or a box whose x2 < x1 or y2 < y1 make the row bad (`BadRow`): no
    clipping makes them a box. A box partly outside is clipped (its spatial features then stay
    in [0, 1]) and counted, so that prepare can report how many; boxes inside stay bit for bit.
    """
    if not np.isfinite(boxes).all():
        k = int(np.flatnonzero(~np.isfinite(boxes).all(axis=1))[0])
        raise BadRow(f"box {k} is {boxes[k].tolist()}: NaN or Inf coordinates", image_id)
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        k = int(np.flatnonzero(inverted)[0])
        raise BadRow(f"box {k} is {boxes[k].tolist()}: x2 < x1 or y2 < y1", image_id)
    limit = np.array([width, height, width, height], np.float32)
    outside = ((boxes < -CLIP_TOLERANCE) | (boxes > limit + CLIP_TOLERANCE)).any(axis=1)
    if not outside.any():
        return boxes, 0
    boxes = boxes.copy()  # frombuffer's array is read-only
    boxes[outside] = np.clip(boxes[outside], 0, limit)
    return boxes, int(outside.sum())


def row_image_id(line: str | bytes) -> int | None:
    """The image id of a row, read without decoding the rest (None if unreadable)."""
    head = line[:32].split(b"\t" if isinstance(line, bytes) else "\t", 1)[0]
    try:
        return int(head)
    except ValueError:
        return None


def parse_row(line: str | bytes, *, feature_dim: int | None = None) -> ImageFeatures:
    """Decode one TSV line, or raise `BadRow` saying what is wrong with it.

    With `feature_dim`, the features must hold exactly num_boxes x feature_dim floats.
    """
    if isinstance(line, str):
        line = line.encode("ascii", errors="replace")
    parts = line.rstrip(b"\r\n").split(b"\t")
    if len(parts) != len(TSV_FIELDS):
        raise BadRow(
            f"expected {len(TSV_FIELDS)} tab-separated fields ({', '.join(TSV_FIELDS)}), found {len(parts)}",
            row_image_id(line),
        )
    try:
        image_id = int(parts[0])
    except ValueError:
        raise BadRow(f"image_id {parts[0][:20]!r} is not an integer") from None
    try:
        width, height = float(parts[1]), float(parts[2])
        num_boxes = int(parts[3])
    except ValueError as err:
        raise BadRow(f"bad number in image_w/image_h/num_boxes: {err}", image_id) from None
    if num_boxes <= 0 or not (0 < width < np.inf and 0 < height < np.inf):
        raise BadRow(f"num_boxes={num_boxes}, size {width}x{height} (positive and finite needed)", image_id)
    try:
        boxes = np.frombuffer(base64.b64decode(parts[4], validate=True), dtype=np.float32)
        feats = np.frombuffer(base64.b64decode(parts[5], validate=True), dtype=np.float32)
    except (binascii.Error, ValueError) as err:
        raise BadRow(f"boxes/features are not base64 float32: {err}", image_id) from None
    if boxes.size != num_boxes * 4:
        raise BadRow(f"boxes hold {boxes.size} floats, expected num_boxes={num_boxes} x 4", image_id)
    boxes, clipped = check_boxes(boxes.reshape(num_boxes, 4), width, height, image_id)
    if feature_dim is not None and feats.size != num_boxes * feature_dim:
        raise BadRow(
            f"features hold {feats.size} floats, expected num_boxes={num_boxes} x {feature_dim} "
            "(data.feature_dim, or the size most rows of the file's first block have)",
            image_id,
        )
    if feats.size == 0 or feats.size % num_boxes:
        raise BadRow(f"features hold {feats.size} floats, not a multiple of num_boxes={num_boxes}", image_id)
    return ImageFeatures(
        image_id=image_id,
        width=width,
        height=height,
        boxes=boxes,
        features=feats.reshape(num_boxes, -1),
        clipped=clipped,
    )


def decode_row(
    line: str | bytes, *, path: Path | str = "<tsv>", line_no: int = 0, feature_dim: int | None = None
) -> ImageFeatures:
    """`parse_row`, with a malformed row as a `FeatureFileError` naming file, line and image."""
    try:
        return parse_row(line, feature_dim=feature_dim)
    except BadRow as bad:
        raise FeatureFileError(bad.located(path, line_no)) from None


def iter_tsv(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield `(line_no, line)` for the non-empty lines of a TSV, streaming."""
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line
