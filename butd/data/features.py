"""Bottom-up feature TSV rows: decoding, and the spatial features derived from boxes.

A row of the official TSV is `image_id, image_w, image_h, num_boxes, boxes, features`,
tab-separated, where the last two are base64 of float32 arrays [num_boxes, 4] and
[num_boxes, feature_dim]. Rows are read one at a time so a file of any size streams.
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


@dataclass
class ImageFeatures:
    image_id: int
    width: float
    height: float
    boxes: np.ndarray  # [num_boxes, 4] float32, x1 y1 x2 y2 in pixels
    features: np.ndarray  # [num_boxes, feature_dim] float32


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


def decode_row(line: str, *, path: Path | str = "<tsv>", line_no: int = 0) -> ImageFeatures:
    """Decode one TSV line; any malformation is a `FeatureFileError` naming file and line."""
    parts = line.rstrip("\r\n").split("\t")
    where = f"{path}:{line_no}"
    if len(parts) != len(TSV_FIELDS):
        raise FeatureFileError(
            f"{where}: expected {len(TSV_FIELDS)} tab-separated fields "
            f"({', '.join(TSV_FIELDS)}), found {len(parts)}"
        )
    try:
        image_id = int(parts[0])
        width, height = float(parts[1]), float(parts[2])
        num_boxes = int(parts[3])
    except ValueError as err:
        raise FeatureFileError(f"{where}: bad number in image_id/image_w/image_h/num_boxes: {err}") from err
    if num_boxes <= 0 or width <= 0 or height <= 0:
        raise FeatureFileError(f"{where}: image {image_id} has num_boxes={num_boxes}, size {width}x{height}")
    try:
        boxes = np.frombuffer(base64.b64decode(parts[4], validate=True), dtype=np.float32)
        feats = np.frombuffer(base64.b64decode(parts[5], validate=True), dtype=np.float32)
    except (binascii.Error, ValueError) as err:
        raise FeatureFileError(
            f"{where}: image {image_id}: boxes/features are not base64 float32: {err}"
        ) from err
    if boxes.size != num_boxes * 4:
        raise FeatureFileError(
            f"{where}: image {image_id}: boxes hold {boxes.size} floats, expected {num_boxes} x 4"
        )
    if feats.size == 0 or feats.size % num_boxes:
        raise FeatureFileError(
            f"{where}: image {image_id}: features hold {feats.size} floats, "
            f"not a multiple of num_boxes={num_boxes}"
        )
    return ImageFeatures(
        image_id=image_id,
        width=width,
        height=height,
        boxes=boxes.reshape(num_boxes, 4),
        features=feats.reshape(num_boxes, -1),
    )


def iter_tsv(path: Path) -> Iterator[tuple[int, str]]:
    """Yield `(line_no, line)` for the non-empty lines of a TSV, streaming."""
    with open(path, encoding="ascii", errors="strict", newline="") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line
