"""A cache is checked when it is opened, before anything in it is trusted.

`load_cache` runs these checks; everything that reads a cache goes through it. A cache is a folder
anyone may have copied, edited or crafted, and HDF5 can do more than store arrays: a dataset may
keep its bytes in another file (external storage), be a view of datasets in other files (a
virtual dataset), or be a link to another file; a dataset may also declare a shape far larger
than its file (chunks never written read as fill values), which a reader would allocate whole.
So, at open:

- the manifest is a mapping with the keys and types butd writes (`butd.cache.manifest.check`,
  run by `Manifest.read`), and its split and file names are plain file names inside the cache folder;
- every object of every split file is stored in that file: no external storage, no soft or
  external links; virtual datasets only in a linked cache (`data.features_from`), each source
  being a split file that the manifest records of the source cache (`butd.preparation.linked`),
  and in a GQA cache, each source being one of the object files of the command's `data.gqa`
  (`butd.preparation.gqa`), viewed under its own dataset names;
- every dataset butd reads has the shape the manifest's counts give (questions, images, boxes,
  the question length, the feature size);
- every index is in range: word ids within the vocabulary (padding included), answer labels
  within the answer list, image rows within the split's images, box rows within its boxes, and
  offsets that start at 0, never decrease and end at their table's length (min/max per dataset).

Each failure is one CacheError naming the file and the dataset. The checks read the index tables
once (the features are never read); a file already checked in this process, unchanged since
(same size, modification time and inode), is not read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from butd.cache.manifest import CacheIntegrityError, Manifest, SplitCounts
from butd.vqa.gqa import OBJECT_VIEWS

#: rows read at a time for the range checks (bounds the memory of a check)
_ROWS = 1 << 20
#: (path, size, mtime_ns, inode) of the split files checked in this process
_checked: set[tuple[str, int, int, int]] = set()


def _walk(group: h5py.Group, path: Path, prefix: str = "") -> Iterable[tuple[str, h5py.Dataset]]:
    """Every dataset under `group`, refusing links to other objects or files."""
    for name in group:
        key = f"{prefix}{name}"
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
            raise CacheIntegrityError(f"{path}: {key} is {kind}; a cache file holds its own data only")
        obj = group[name]
        if isinstance(obj, h5py.Group):
            yield from _walk(obj, path, key + "/")
        elif isinstance(obj, h5py.Dataset):
            yield key, obj


#: the files a cache file may view, and for each which dataset each of its keys may view there
#: (None: the dataset of the same name, as a linked cache's views of its source cache's files)
Sources = dict[Path, "dict[str, str] | None"]


def _check_storage(path: Path, key: str, ds: h5py.Dataset, sources: Sources) -> None:
    """Refuse data kept outside the file, unless it is a view of one of the allowed sources."""
    if ds.external:
        raise CacheIntegrityError(
            f"{path}: {key} keeps its data in another file ({ds.external[0][0]!r}, external storage); "
            "a cache file holds its own data only"
        )
    if not ds.is_virtual:
        return
    for source in ds.virtual_sources():
        target = (path.parent / source.file_name).resolve() if source.file_name != "." else path.resolve()
        names = sources.get(target, {})
        allowed = key if names is None else names.get(key)
        if target not in sources or source.dset_name.lstrip("/") != allowed:
            raise CacheIntegrityError(
                f"{path}: {key} is a view of {source.file_name}:{source.dset_name}, which is not a split "
                "file of the source cache recorded in the manifest (data.features_from), nor the GQA "
                "object file of data.gqa it may view; a cache file reads only its own data and its "
                "recorded sources'"
            )


def _shape_problem(key: str, shape: tuple[int, ...], want: dict[str, tuple[Any, ...]]) -> str | None:
    expected = want.get(key)
    if expected is None:
        return None
    if len(shape) != len(expected) or any(
        e is not None and s != e for s, e in zip(shape, expected, strict=False)
    ):
        shown = tuple("*" if e is None else e for e in expected)
        return f"{key} has shape {shape}, the manifest's counts give {shown}"
    return None


#: the datasets butd reads as integers (indices, ids, offsets) and as floats
_INTEGER = {"questions/question_id", "questions/image_id", "questions/image_index", "questions/tokens",
            "images/box_offsets", "images/box_start", "images/counts", "images/image_id", "targets/offsets",
            "targets/labels", "vqa_acc/offsets", "vqa_acc/labels"}  # fmt: skip
_FLOAT = {
    "images/features",
    "images/boxes",
    "images/spatial",
    "images/size",
    "targets/scores",
    "vqa_acc/scores",
}


def _dtype_problem(key: str, dtype: np.dtype) -> str | None:
    if key in _INTEGER and dtype.kind not in "iu":
        return f"{key} holds {dtype} values, not integers"
    if key in _FLOAT and dtype.kind != "f":
        return f"{key} holds {dtype} values, not floating-point numbers"
    return None


def _range(ds: h5py.Dataset) -> tuple[int, int]:
    """min and max of an integer dataset, read a slab of rows at a time."""
    lo, hi = None, None
    rows = max(1, _ROWS // max(1, int(np.prod(ds.shape[1:]))))
    for start in range(0, ds.shape[0], rows):
        block = ds[start : start + rows]
        if block.size:
            lo = int(block.min()) if lo is None else min(lo, int(block.min()))
            hi = int(block.max()) if hi is None else max(hi, int(block.max()))
    return (0, -1) if lo is None else (lo, hi)


def _check_offsets(path: Path, key: str, offsets: np.ndarray, end: int) -> None:
    if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != end or (np.diff(offsets) < 0).any():
        raise CacheIntegrityError(
            f"{path}: {key} are not offsets from 0 to {end:,} that never decrease; the file is damaged "
            "or was not made by butd"
        )


def check_split_file(
    path: Path, *, split: SplitCounts, manifest: Manifest, sources: Sources, rebuild: str
) -> None:
    """One split file against the manifest: storage, shapes, index ranges (see the module doc)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key in _checked:
        return
    try:
        _check_split_file(path, split, manifest, sources)
    except CacheIntegrityError as err:
        raise CacheIntegrityError(f"{err}. {rebuild}") from None
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise CacheIntegrityError(
            f"{path} cannot be checked ({type(err).__name__}: {err}). {rebuild}"
        ) from None
    _checked.add(key)


def _check_split_file(path: Path, split: SplitCounts, manifest: Manifest, sources: Sources) -> None:
    counts = manifest.counts
    q, n = split.questions, split.images
    with h5py.File(path, "r") as f:
        datasets = dict(_walk(f, path))
        for key, ds in datasets.items():
            _check_storage(path, key, ds, sources)
        for required in ("questions/tokens", "questions/image_index", "images/features"):
            if required not in datasets:
                raise CacheIntegrityError(f"{path}: {required} is missing")
        boxes = datasets["images/features"].shape[0]
        max_boxes = sum(_rows(s, names) for s, names in sources.items()) if sources else n * split.boxes.max
        want: dict[str, tuple[Any, ...]] = {
            "questions/tokens": (q, manifest.max_question_len),
            "images/features": (None, counts.feature_dim),
            "images/boxes": (boxes, 4),
            "images/spatial": (boxes, 6),
            "images/box_offsets": (n + 1,),
            "images/box_start": (n,),
            "images/counts": (n,),
            "images/size": (n, 2),
            "images/image_id": (n,),
            "questions/gt_answers": (q, None),
            "targets/offsets": (q + 1,),
            "vqa_acc/offsets": (q + 1,),
        }
        for name in ("question_id", "image_id", "image_index", "question", "question_type", "answer_type",
                     "multiple_choice_answer"):  # fmt: skip
            want[f"questions/{name}"] = (q,)
        for table in ("targets", "vqa_acc"):
            if f"{table}/offsets" in datasets:
                nnz = int(datasets[f"{table}/offsets"][-1])
                if not 0 <= nnz <= q * counts.num_answers:
                    raise CacheIntegrityError(f"{path}: {table}/offsets ends at {nnz:,}, beyond the counts")
                want[f"{table}/labels"] = (nnz,)
                want[f"{table}/scores"] = (nnz,)
        for key, ds in datasets.items():
            problem = _shape_problem(key, ds.shape, want) or _dtype_problem(key, ds.dtype)
            if problem:
                raise CacheIntegrityError(f"{path}: {problem}")
        if boxes > max_boxes:
            raise CacheIntegrityError(
                f"{path}: images/features has {boxes:,} rows, more than the {max_boxes:,} boxes the "
                "manifest's counts allow"
            )
        limits = {
            "questions/tokens": (0, counts.ntoken, "word ids (the last is padding)"),
            "questions/image_index": (0, n - 1, "rows of images/"),
            "targets/labels": (0, counts.num_answers - 1, "answer labels"),
            "vqa_acc/labels": (0, counts.num_answers - 1, "answer labels"),
            "images/counts": (0, split.boxes.max, "boxes per image"),
            "images/box_start": (0, max(boxes - 1, 0), "box rows"),
        }
        for key, (low, high, what) in limits.items():
            if key in datasets:
                lo, hi = _range(datasets[key])
                if lo <= hi and (lo < low or hi > high):
                    raise CacheIntegrityError(
                        f"{path}: {key} holds values from {lo:,} to {hi:,}, outside the {what} "
                        f"{low:,}..{high:,} that the manifest's counts allow"
                    )
        for table in ("targets", "vqa_acc"):
            if f"{table}/offsets" in datasets:
                end = datasets[f"{table}/labels"].shape[0]
                _check_offsets(path, f"{table}/offsets", datasets[f"{table}/offsets"][:], end)
        if "images/box_offsets" in datasets:
            _check_offsets(path, "images/box_offsets", datasets["images/box_offsets"][:], boxes)
        if "images/box_start" in datasets and "images/counts" in datasets:
            ends = datasets["images/box_start"][:].astype(np.int64) + datasets["images/counts"][:]
            if ends.size and int(ends.max()) > boxes:
                raise CacheIntegrityError(
                    f"{path}: images/box_start + counts reach past the {boxes:,} box rows"
                )


def _rows(source: Path, names: dict[str, str] | None) -> int:
    """Box rows of a source file: a linked source cache's split file, or a GQA object file whose
    features are [images, boxes, dim] (`names`: its dataset names, as `Sources` gives them)."""
    with h5py.File(source, "r") as f:
        for key, ds in _walk(f, source):
            if ds.external or ds.is_virtual:
                raise CacheIntegrityError(
                    f"{source}: {key} is not stored in the file; a source cache holds its own data"
                )
        if names is None:
            return int(f["images/features"].shape[0])
        return int(np.prod(f[names["images/features"]].shape[:-1]))


def check_cache_files(
    root: Path,
    manifest: Manifest,
    *,
    linked_from: Path | None,
    rebuild: str,
    gqa_objects: list[Path] | None = None,
) -> None:
    """Every split file of the cache at `root` (see the module doc); `linked_from`: the source cache
    of a linked cache, whose recorded split files are the only sources its views may read;
    `gqa_objects`: a GQA cache's object files (the command's `data.gqa`), which its views read."""
    sources: Sources = {}
    if linked_from is not None:
        sources = {(linked_from / name).resolve(): None for name in manifest.features_from["files"]}
    for path in gqa_objects or []:
        sources[path.resolve()] = dict(OBJECT_VIEWS)
    for name, split in manifest.counts.splits.items():
        check_split_file(
            root / f"{name}.h5", split=split, manifest=manifest, sources=sources, rebuild=rebuild
        )
