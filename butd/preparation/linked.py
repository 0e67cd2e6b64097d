"""A cache that reads its image features from another prepared cache (`data.features_from`).

VQA-CP v2 re-splits the questions of VQA v2's train and val, so its images are exactly VQA v2's:
converting the 49 GB feature TSV a second time would only copy what `data=vqa2`'s cache holds.
With `data.features_from` naming that cache, each split file of the new cache gets an `images/`
group whose `features`, `boxes` and `spatial` are HDF5 virtual datasets: the source cache's
split files laid end to end, read in place (no copy, a few KB on disk). The per-image tables
(`image_id`, `counts`, `size`) hold only the split's own images, and `images/box_start` says
where each image's boxes start in the virtual datasets (instead of `box_offsets`, which only a
contiguous layout can use; `butd.cache.load.box_ranges` reads either).

The source files are named relative to the new split file, so moving the data folder as a whole
keeps the link. HDF5 fills a virtual dataset whose source is missing with its fill value (NaN
here) rather than failing; `butd.cache.load.check_linked` refuses such a cache when it is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from butd.cache.load import box_ranges
from butd.cache.manifest import MANIFEST, CacheError, Manifest, split_file

#: the per-box datasets of a split file, linked; their per-row shape and dtype come from the source
LINKED_SETS = ("features", "boxes", "spatial")
#: the per-image datasets of a split file, copied for the split's images
IMAGE_SETS = ("image_id", "counts", "size")
#: cache settings that must agree between the two caches for the boxes to mean the same
BOX_SETTINGS = ("num_boxes", "boxes", "min_boxes")


@dataclass
class Source:
    """The source cache: its manifest, its split files, and what every linked split needs of them,
    read once: the joint per-image tables and each file's per-box datasets."""

    root: Path
    manifest: Manifest
    files: list[Path]
    #: the per-image tables of all source files laid end to end, `box_start` into the joint boxes
    tables: dict[str, np.ndarray]
    #: per file: its first row in the joint boxes, and name -> (shape, dtype) of its per-box datasets
    boxes: list[tuple[Path, int, dict[str, tuple[tuple[int, ...], np.dtype]]]]
    #: rows of the joint boxes
    total: int

    @classmethod
    def open(cls, root: Path, settings: dict[str, Any]) -> Source:
        """The complete cache at `root`, with boxes stored as `settings` asks, or a CacheError."""
        path = root / MANIFEST
        if not path.is_file():
            raise CacheError(
                f"data.features_from={str(root)!r} has no prepared cache ({path} does not exist); "
                "prepare that data set first (e.g. `python -m butd.prepare data=vqa2`), or set "
                "data.features_from=null to convert data.features for this cache"
            )
        manifest = Manifest.read(path, command=f"python -m butd.prepare data.cache_dir={root}")
        theirs = manifest.settings
        differ = [
            f"{k}: {theirs.get(k)!r} there, {settings.get(k)!r} here"
            for k in BOX_SETTINGS
            if theirs.get(k) != settings.get(k)
        ]
        if differ:
            raise CacheError(
                f"the cache at {root} (data.features_from) stores other boxes than this data config "
                f"asks for: {'; '.join(differ)}. Use a source cache prepared with the same box settings."
            )
        files = [split_file(root, s) for s in manifest.counts.splits]
        tables: list[dict[str, np.ndarray]] = []
        boxes = []
        base = 0
        for src in files:
            with h5py.File(src, "r") as f:
                g = f["images"]
                start, _ = box_ranges(g)
                tables.append({name: g[name][:] for name in IMAGE_SETS} | {"box_start": start + base})
                boxes.append((src, base, {name: (g[name].shape, g[name].dtype) for name in LINKED_SETS}))
                base += g["features"].shape[0]
        joint = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
        return cls(root=root, manifest=manifest, files=files, tables=joint, boxes=boxes, total=base)

    def record(self) -> dict[str, Any]:
        """What the new manifest remembers of the source, so a changed source is noticed."""
        return {
            "cache": str(self.root),
            "created": self.manifest.created,
            # a rebuild replaces the files: their modification times say so even within the
            # second `created` records
            "files": {
                p.name: {"size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in self.files
            },
        }


class LinkedSplit:
    """One split file of the new cache, its `images/` group linked to the source's boxes.

    Offers what `butd.preparation.build` uses of a `SplitWriter`: `h5`, `num_images`, `row_of`,
    `finish()` and `close()`.
    """

    def __init__(self, path: Path, source: Source, images: np.ndarray) -> None:
        self.path = path
        self.h5 = h5py.File(path, "w")
        g = self.h5.create_group("images")
        for name in LINKED_SETS:
            shape, dtype = source.boxes[0][2][name]
            layout = h5py.VirtualLayout(shape=(source.total, *shape[1:]), dtype=dtype)
            for src, base, sets in source.boxes:
                shape, dtype = sets[name]
                relative = os.path.relpath(src, path.parent)
                layout[base : base + shape[0]] = h5py.VirtualSource(
                    relative, f"/images/{name}", shape=shape, dtype=dtype
                )
            g.create_virtual_dataset(name, layout, fillvalue=np.nan)
        joint = source.tables
        # an image in several source splits (none in VQA v2) is taken from the first
        ids, first = np.unique(joint["image_id"], return_index=True)
        take = first[np.isin(ids, images)]
        take.sort()
        for name, values in joint.items():
            g.create_dataset(name, data=values[take])
        self.num_images = len(take)
        self.row_of = {int(i): r for r, i in enumerate(joint["image_id"][take])}

    def finish(self) -> None:
        """Nothing to trim: the tables were written whole."""

    def close(self) -> None:
        self.h5.close()


def link_features(
    source_root: Path, out_dir: Path, wanted: dict[str, np.ndarray], settings: dict[str, Any]
) -> tuple[dict[str, LinkedSplit], Source]:
    """`{split}.h5.partial` files for the splits of `wanted` (split -> image ids), linked to the
    cache at `source_root`."""
    source = Source.open(source_root, settings)
    writers = {
        s: LinkedSplit(Path(str(split_file(out_dir, s)) + ".partial"), source, ids)
        for s, ids in wanted.items()
    }
    return writers, source
