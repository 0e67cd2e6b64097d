"""Streaming, parallel, resumable conversion of bottom-up feature TSVs into per-split HDF5 files.

The official feature files are tens of GB of base64 text. They are cut into byte ranges at line
boundaries (`plan_chunks`); worker processes read and decode their ranges, keep only the images
some split needs, check every row and convert it to float16, and send back compact arrays. The
main process writes them, in file order, into `{split}.h5.partial`, with a bounded number of
chunks in flight, so the peak memory depends on the chunk size and the number of workers, never
on the size of the files.

Every few seconds the files are flushed and the progress is recorded in `convert.partial.json`;
a run that stops (a corrupted row, Ctrl-C, a full disk) leaves what it converted, and the next
run with the same settings and the same source files continues from there.

Layout of the image part of a split file (the questions are added by `butd.cache.load`):

- `images/features` float16 [B, D]: the boxes of all images, one row per box, image after image;
- `images/boxes` float32 [B, 4] (x1 y1 x2 y2, pixels), `images/spatial` float32 [B, 6];
- `images/box_offsets` int64 [N+1]: image i owns rows `box_offsets[i]:box_offsets[i+1]`;
- `images/image_id` int64 [N], `images/size` float32 [N, 2] (width, height).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from butd.errors import DiskFullError, UserError
from butd.files import atomic_write_text
from butd.vqa.features import BadRow, parse_row, row_image_id, spatial_features

log = logging.getLogger(__name__)

STATE = "convert.partial.json"
#: chunks in flight per worker: enough to keep every worker busy while the main process writes
IN_FLIGHT_PER_WORKER = 2
#: seconds between flushes of the partial files (each one a point a later run can resume from)
CHECKPOINT_EVERY_S = 5.0


class ConversionError(UserError):
    """The feature files cannot be converted as configured; the message says where and why."""


@dataclass(frozen=True)
class BoxSpec:
    """Boxes a row may have: exactly `num_boxes` (fixed), or `min_boxes`..`num_boxes` (adaptive)."""

    adaptive: bool = False
    num_boxes: int = 36
    min_boxes: int = 1

    @classmethod
    def of(cls, data: Any) -> BoxSpec:
        """The boxes the feature rows of a data config (`butd.config.data.DataConfig`) may have."""
        return cls(data.boxes == "adaptive", data.num_boxes, data.min_boxes)

    def check(self, count: int) -> str | None:
        if self.adaptive:
            if not self.min_boxes <= count <= self.num_boxes:
                return (
                    f"has {count} boxes, outside data.min_boxes..data.num_boxes = "
                    f"{self.min_boxes}..{self.num_boxes}"
                )
        elif count != self.num_boxes:
            return (
                f"has {count} boxes but data.num_boxes={self.num_boxes} (fixed); for files with a "
                "varying number of boxes set data.boxes=adaptive"
            )
        return None


@dataclass(frozen=True)
class Chunk:
    """Bytes `start:end` of feature file `file` (both at line boundaries)."""

    index: int
    file: int
    start: int
    end: int


@dataclass
class Decoded:
    """What a worker sends back for one chunk: the wanted, valid rows as arrays."""

    lines: int  # lines in the chunk, for numbering the next chunk's lines
    image_id: np.ndarray  # int64 [n]
    size: np.ndarray  # float32 [n, 2]
    counts: np.ndarray  # int64 [n]
    line: np.ndarray  # int64 [n], line within the chunk (1-based)
    features: np.ndarray  # float16 [sum(counts), D]
    boxes: np.ndarray  # float32 [sum(counts), 4]
    spatial: np.ndarray  # float32 [sum(counts), 6]
    bad: list[tuple[int, int | None, str]] = field(default_factory=list)  # (line, image id, reason)
    clipped: list[tuple[int, int, int]] = field(default_factory=list)  # (line, image id, boxes clipped)


def plan_chunks(paths: list[Path], chunk_bytes: int) -> list[Chunk]:
    """Cut each file into ranges of about `chunk_bytes`, every range ending after a newline."""
    chunks: list[Chunk] = []
    for f, path in enumerate(paths):
        size = path.stat().st_size
        with open(path, "rb") as fh:
            start = 0
            while start < size:
                end = min(start + chunk_bytes, size)
                if end < size:
                    fh.seek(end)
                    fh.readline()  # to the end of the line the cut falls in
                    end = fh.tell()
                chunks.append(Chunk(len(chunks), f, start, end))
                start = end
    return chunks


# ---------------------------------------------------------------------------------------------
# Worker side

_worker: dict[str, Any] = {}


def _init_worker(paths: list[str], wanted: frozenset[int], boxes: BoxSpec, feature_dim: int) -> None:
    _worker.update(paths=paths, wanted=wanted, boxes=boxes, feature_dim=feature_dim)


def _empty(feature_dim: int, lines: int, bad: list) -> Decoded:
    return Decoded(
        lines=lines,
        image_id=np.zeros(0, np.int64),
        size=np.zeros((0, 2), np.float32),
        counts=np.zeros(0, np.int64),
        line=np.zeros(0, np.int64),
        features=np.zeros((0, feature_dim), np.float16),
        boxes=np.zeros((0, 4), np.float32),
        spatial=np.zeros((0, 6), np.float32),
        bad=bad,
    )


def decode_chunk(chunk: Chunk) -> Decoded:
    """Read and decode one chunk (in a worker: settings come from `_init_worker`)."""
    w = _worker
    with open(w["paths"][chunk.file], "rb") as fh:
        fh.seek(chunk.start)
        data = fh.read(chunk.end - chunk.start)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the chunk ends with a newline
    kept: list[tuple[int, Any]] = []
    bad: list[tuple[int, int | None, str]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        image_id = row_image_id(line)
        if image_id is not None and image_id not in w["wanted"]:
            continue  # an image no prepared split uses: not decoded at all
        try:
            item = parse_row(line, feature_dim=w["feature_dim"])
            problem = w["boxes"].check(item.boxes.shape[0])
            if problem:
                raise BadRow(problem, item.image_id)
            features = item.features.astype(np.float16)
            if not np.isfinite(features).all():
                raise BadRow(
                    "features hold NaN, Inf or values beyond float16's range (+-65504)", item.image_id
                )
        except BadRow as err:
            bad.append((i, err.image_id, err.reason))
            continue
        kept.append((i, item, features))
    clipped = [(i, it.image_id, it.clipped) for i, it, _ in kept if it.clipped]
    if not kept:
        return _empty(w["feature_dim"], len(lines), bad)
    return Decoded(
        lines=len(lines),
        image_id=np.array([it.image_id for _, it, _ in kept], np.int64),
        size=np.array([(it.width, it.height) for _, it, _ in kept], np.float32),
        counts=np.array([it.boxes.shape[0] for _, it, _ in kept], np.int64),
        line=np.array([i for i, _, _ in kept], np.int64),
        features=np.concatenate([f for _, _, f in kept]),
        boxes=np.concatenate([it.boxes for _, it, _ in kept]),
        spatial=np.concatenate([spatial_features(it.boxes, it.width, it.height) for _, it, _ in kept]),
        bad=bad,
        clipped=clipped,
    )


# ---------------------------------------------------------------------------------------------
# Main side: writing


class SplitWriter:
    """Appends images to the `images/` group of one split's partial HDF5 file.

    `resume_at=(images, boxes)` reopens an existing partial file and drops anything past
    that point (written after the last recorded progress).
    """

    def __init__(
        self,
        path: Path,
        *,
        feature_dim: int,
        chunk_rows: int,
        resume_at: tuple[int, int] | None = None,
    ) -> None:
        self.path = path
        if resume_at is None:
            self.h5 = h5py.File(path, "w")
            g = self.h5.create_group("images")

            def make(name: str, shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...] | bool = True):
                return g.create_dataset(
                    name, (0, *shape), dtype=dtype, maxshape=(None, *shape), chunks=chunks
                )

            make("features", (feature_dim,), "f2", chunks=(chunk_rows, feature_dim))
            make("boxes", (4,), "f4", chunks=(chunk_rows * 16, 4))
            make("spatial", (6,), "f4", chunks=(chunk_rows * 16, 6))
            make("counts", (), "i8", chunks=(4096,))
            make("image_id", (), "i8", chunks=(4096,))
            make("size", (2,), "f4", chunks=(4096, 2))
            self.num_images = self.num_boxes = 0
        else:
            self.h5 = h5py.File(path, "r+")
            self.num_images, self.num_boxes = resume_at
        g = self.h5["images"]
        self.box_sets = [g["features"], g["boxes"], g["spatial"]]
        self.image_sets = [g["counts"], g["image_id"], g["size"]]
        #: image id -> its row, for duplicates and for the questions' image_index
        self.row_of: dict[int, int] = {int(i): r for r, i in enumerate(g["image_id"][: self.num_images])}

    def append(self, d: Decoded, take: np.ndarray) -> None:
        """Write rows `take` (indices into `d`'s images) at the end."""
        if not len(take):
            return
        starts = np.concatenate([[0], np.cumsum(d.counts)])
        box_rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in take])
        n, b = len(take), len(box_rows)
        whole = len(take) == len(d.image_id)
        for ds, values in zip(self.box_sets, (d.features, d.boxes, d.spatial), strict=True):
            ds.resize(self.num_boxes + b, axis=0)
            ds[self.num_boxes :] = values if whole else values[box_rows]
        for ds, values in zip(self.image_sets, (d.counts, d.image_id, d.size), strict=True):
            ds.resize(self.num_images + n, axis=0)
            ds[self.num_images :] = values[take]
        for r, i in enumerate(d.image_id[take], start=self.num_images):
            self.row_of[int(i)] = r
        self.num_images += n
        self.num_boxes += b

    def finish(self) -> None:
        """Trim to what was written and add `box_offsets` (the readers' index)."""
        for ds in self.box_sets:
            ds.resize(self.num_boxes, axis=0)
        for ds in self.image_sets:
            ds.resize(self.num_images, axis=0)
        counts = self.h5["images/counts"][:]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if "box_offsets" in self.h5["images"]:
            del self.h5["images/box_offsets"]
        self.h5["images"].create_dataset("box_offsets", data=offsets)

    def flush(self) -> None:
        self.h5.flush()

    def close(self) -> None:
        self.h5.close()


# ---------------------------------------------------------------------------------------------
# Main side: the conversion


@dataclass
class ConvertResult:
    feature_dim: int
    writers: dict[str, SplitWriter]
    skipped_rows: int
    skipped_examples: list[str]
    clipped_boxes: int
    clipped_examples: list[str]
    seconds: float
    resumed_from_chunk: int
    chunks: int
    workers: int
    #: a linked cache's record of its feature source (`butd.preparation.linked`); None: converted
    linked: dict[str, Any] | None = None

    @classmethod
    def viewed(
        cls,
        *,
        feature_dim: int,
        writers: dict[str, Any],
        seconds: float,
        linked: dict[str, Any] | None = None,
    ) -> ConvertResult:
        """The result of a build whose features are views of other files (a linked cache, GQA's
        object files): nothing converted, skipped or clipped."""
        return cls(feature_dim=feature_dim, writers=writers, skipped_rows=0, skipped_examples=[],
                   clipped_boxes=0, clipped_examples=[], seconds=seconds, resumed_from_chunk=0,
                   chunks=0, workers=0, linked=linked)  # fmt: skip


#: rows read to find the feature size when data.feature_dim is not set
FIRST_BLOCK = 100


def probe_feature_dim(paths: list[Path], configured: int | None = None) -> int:
    """`configured` (data.feature_dim), else the feature size most of the first block's rows have.

    The first block is the first `FIRST_BLOCK` non-empty rows: one bad first row does not
    decide the size (and then make every good row "bad"); a size fewer than half the decodable
    rows agree on asks for data.feature_dim.
    """
    if configured is not None:
        return configured
    sizes: Counter[int] = Counter()
    rows = 0
    for path in paths:
        with open(path, "rb") as fh:
            for line in fh:
                if rows >= FIRST_BLOCK:
                    break
                if not line.strip():
                    continue
                rows += 1
                try:
                    sizes[int(parse_row(line).features.shape[1])] += 1
                except BadRow:
                    continue
    if not sizes:
        raise ConversionError(
            f"no row of the first {rows} of {[str(p) for p in paths]} decodes as a bottom-up feature row "
            "(image_id, image_w, image_h, num_boxes, boxes, features); are these the feature TSVs?"
        )
    (size, count), decodable = sizes.most_common(1)[0], sum(sizes.values())
    if 2 * count <= decodable:
        raise ConversionError(
            f"the first {rows} rows of {[str(p) for p in paths]} disagree on the feature size "
            f"(floats per box: {dict(sizes.most_common())} rows); set data.feature_dim (2048 for the "
            "bottom-up sets)"
        )
    return size


def _source_key(paths: list[Path]) -> list[list[Any]]:
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def _pool(workers: int, initargs: tuple) -> Any:
    if workers == 0:
        return None
    from concurrent.futures import ProcessPoolExecutor

    # spawn: the parent may hold threads (progress bar, torch), which fork does not mix with
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=initargs)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class ConversionState:
    """How far a conversion got, saved as `STATE` so that a stopped run can be continued.

    The JSON keys are the file's format: a file written by an earlier version still resumes.
    """

    key: dict[str, Any]  # what the output depends on; another key means another conversion
    line_base: list[int]  # lines of each file before `next_chunk`, to number the rows
    splits: dict[str, tuple[int, int]]  # split -> (images, boxes) written up to `next_chunk`
    next_chunk: int = 0
    skipped: int = 0  # bad rows skipped (data.skip_bad_rows)
    examples: list[str] = field(default_factory=list)  # the first few of them, located
    clipped: int = 0  # boxes reaching outside their image, clipped to it
    clipped_examples: list[str] = field(default_factory=list)  # the first few rows with such boxes

    @classmethod
    def start(cls, key: dict[str, Any], files: int, splits: Iterable[str]) -> ConversionState:
        return cls(key=key, line_base=[0] * files, splits={s: (0, 0) for s in splits})

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "next_chunk": self.next_chunk,
                "line_base": self.line_base,
                "skipped": self.skipped,
                "examples": self.examples,
                "clipped": self.clipped,
                "clipped_examples": self.clipped_examples,
                "splits": {s: list(at) for s, at in self.splits.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ConversionState:
        """Raises ValueError, KeyError or TypeError for a file that is not a progress record."""
        d = json.loads(text)
        return cls(
            key=d["key"],
            line_base=[int(n) for n in d["line_base"]],
            splits={s: (int(images), int(boxes)) for s, (images, boxes) in d["splits"].items()},
            next_chunk=int(d["next_chunk"]),
            skipped=int(d["skipped"]),
            examples=[str(e) for e in d["examples"]],
            clipped=int(d.get("clipped", 0)),  # absent from records of earlier versions
            clipped_examples=[str(e) for e in d.get("clipped_examples", [])],
        )


def convert_features(
    paths: list[Path],
    out_dir: Path,
    splits_of_image: dict[int, list[str]],
    *,
    boxes: BoxSpec,
    settings: dict[str, Any],
    workers: int | None = None,
    chunk_bytes: int = 16 << 20,
    skip_bad_rows: bool = False,
    feature_dim: int | None = None,
    fresh: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> ConvertResult:
    """Convert the feature files into `{split}.h5.partial` in `out_dir`, resuming if possible.

    splits_of_image: image id -> the prepared splits that use it (an image may be in several).
    settings: everything else the output depends on; a partial conversion made with other
    settings or other source files is discarded, as is any with `fresh=True`.
    feature_dim: floats per box (data.feature_dim); None: the size most of the first rows have.
    progress(done_bytes, total_bytes, note) is called after every chunk.
    The writers are returned open; the caller adds the questions, finishes and closes them.
    """
    started = time.time()
    workers = default_workers() if workers is None else workers
    splits = sorted({s for ss in splits_of_image.values() for s in ss})
    feature_dim = probe_feature_dim(paths, feature_dim)
    chunks = plan_chunks(paths, chunk_bytes)
    key = _conversion_key(paths, splits_of_image, splits, settings, chunk_bytes, feature_dim, boxes)
    state_path = out_dir / STATE
    partial = {s: out_dir / f"{s}.h5.partial" for s in splits}
    state = None if fresh else _resumable_state(state_path, key, partial)
    writers, state = _open_writers(partial, state, key, len(paths), feature_dim, boxes.num_boxes)
    first = state.next_chunk
    if first:
        log.info("resuming the feature conversion at chunk %d of %d", first, len(chunks))

    run = _Writing(paths, splits_of_image, writers, state, state_path, skip_bad_rows)
    initargs = ([str(p) for p in paths], frozenset(splits_of_image), boxes, feature_dim)
    pool = _pool(workers, initargs)
    if pool is None:
        _init_worker(*initargs)
    try:
        dispatch = _Dispatch(chunks[first:], pool, max(1, workers) * IN_FLIGHT_PER_WORKER)
        _write_in_order(run, dispatch, chunks, progress)
    except BaseException:
        run.abandon()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return ConvertResult(
        feature_dim=feature_dim,
        writers=writers,
        skipped_rows=state.skipped,
        skipped_examples=state.examples,
        clipped_boxes=state.clipped,
        clipped_examples=state.clipped_examples,
        seconds=time.time() - started,
        resumed_from_chunk=first,
        chunks=len(chunks),
        workers=workers,
    )


def _conversion_key(
    paths: list[Path],
    splits_of_image: dict[int, list[str]],
    splits: list[str],
    settings: dict[str, Any],
    chunk_bytes: int,
    feature_dim: int,
    boxes: BoxSpec,
) -> dict[str, Any]:
    """Everything the partial files depend on: a recorded conversion resumes only if it matches."""
    return {
        "settings": settings,
        "sources": _source_key(paths),
        "chunk_bytes": chunk_bytes,
        "feature_dim": feature_dim,
        "boxes": asdict(boxes),
        "splits": {s: sum(s in ss for ss in splits_of_image.values()) for s in splits},
    }


def _resumable_state(state_path: Path, key: dict, partial: dict[str, Path]) -> ConversionState | None:
    if not state_path.is_file():
        return None
    try:
        state = ConversionState.from_json(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state.key != json.loads(json.dumps(key)) or not all(p.is_file() for p in partial.values()):
        log.info("discarding a partial conversion made with other settings or source files")
        return None
    return state


def _open_writers(
    partial: dict[str, Path],
    state: ConversionState | None,
    key: dict[str, Any],
    files: int,
    feature_dim: int,
    chunk_rows: int,
) -> tuple[dict[str, SplitWriter], ConversionState]:
    """Reopen the partial files where `state` left them, or, without one, start them anew."""
    writers: dict[str, SplitWriter] = {}
    try:
        for s, path in partial.items():
            at = None if state is None else state.splits[s]
            writers[s] = SplitWriter(path, feature_dim=feature_dim, chunk_rows=chunk_rows, resume_at=at)
    except (OSError, KeyError):  # a partial file the last run left damaged: start over
        for w in writers.values():
            w.close()
        state, writers = (
            None,
            {s: SplitWriter(p, feature_dim=feature_dim, chunk_rows=chunk_rows) for s, p in partial.items()},
        )
    if state is None:
        state = ConversionState.start(key, files, partial)
    return writers, state


class _Dispatch:
    """Hands chunks to the workers, a bounded number in flight, and takes them back in file order.

    Without a pool (no workers) a chunk is decoded in this process when it is taken.
    """

    def __init__(self, chunks: list[Chunk], pool: Any, window: int) -> None:
        self.todo = iter(chunks)
        self.pool = pool
        self.pending: deque[tuple[Chunk, Any]] = deque()
        while len(self.pending) < window and self.submit():
            pass

    def submit(self) -> bool:
        """Send the next chunk to a worker; False when none is left."""
        chunk = next(self.todo, None)
        if chunk is None:
            return False
        self.pending.append((chunk, self.pool.submit(decode_chunk, chunk) if self.pool else None))
        return True

    def take(self) -> tuple[Chunk, Decoded] | None:
        """The oldest chunk in flight, decoded (waiting for it); None when all were taken."""
        if not self.pending:
            return None
        chunk, future = self.pending.popleft()
        return chunk, _result(future) if future is not None else decode_chunk(chunk)


def _write_in_order(
    run: _Writing,
    dispatch: _Dispatch,
    chunks: list[Chunk],
    progress: Callable[[int, int, str], None] | None,
) -> None:
    """Write every chunk as it comes back, with a new one sent out for each, and save the progress."""
    total = sum(c.end - c.start for c in chunks)
    done = sum(c.end - c.start for c in chunks[: run.state.next_chunk])
    last_save = time.time()
    while (item := dispatch.take()) is not None:
        chunk, decoded = item
        run.write(chunk, decoded)
        done += chunk.end - chunk.start
        dispatch.submit()
        if progress is not None:
            progress(done, total, run.note())
        if time.time() - last_save > CHECKPOINT_EVERY_S:
            run.save()
            last_save = time.time()
    run.save()


def _result(future: Any) -> Decoded:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool as err:
        raise ConversionError(
            "a feature-conversion worker process died (killed, or out of memory?). What was "
            "converted is kept and running prepare again continues; with little memory use fewer "
            "processes (data.prepare_workers=1) or smaller work units (data.prepare_chunk_mb=4); "
            "data.prepare_workers=0 converts in this process."
        ) from err


@dataclass
class _Writing:
    """The main process's side: decoded chunks into the split files, and the record of how far."""

    paths: list[Path]
    splits_of_image: dict[int, list[str]]
    writers: dict[str, SplitWriter]
    state: ConversionState
    state_path: Path
    skip_bad_rows: bool

    def write(self, chunk: Chunk, d: Decoded) -> None:
        """Append the chunk's new, valid images to the splits that use them (the next chunk in order)."""
        firsts = self._check(chunk, d)
        data_bytes = d.features.nbytes + d.boxes.nbytes + d.spatial.nbytes
        ensure_room(self.state_path.parent, data_bytes * len(self.writers), f"chunk {chunk.index}")
        path, base = self.paths[chunk.file], self.state.line_base[chunk.file]
        for line, image_id, count in d.clipped:
            self.state.clipped += count
            if len(self.state.clipped_examples) < 5:
                self.state.clipped_examples.append(f"{path}:{base + line}: image {image_id}, {count} boxes")
        for split, writer in self.writers.items():
            take = [j for j in firsts if split in self.splits_of_image[int(d.image_id[j])]]
            writer.append(d, np.asarray(take, np.int64))
        self.state.line_base[chunk.file] += d.lines
        self.state.next_chunk = chunk.index + 1

    def _check(self, chunk: Chunk, d: Decoded) -> list[int]:
        """The chunk's images to write; its bad rows stop the run, or are counted and skipped."""
        path, base = self.paths[chunk.file], self.state.line_base[chunk.file]
        bad = [BadRow(reason, image_id).located(path, base + line) for line, image_id, reason in d.bad]
        # an image seen before is a bad row too (the first one is kept)
        firsts: list[int] = []
        seen: set[int] = set()
        for j, image_id in enumerate(d.image_id.tolist()):
            if image_id in seen or any(
                image_id in self.writers[s].row_of for s in self.splits_of_image[image_id]
            ):
                bad.append(
                    BadRow("appears a second time in the feature files", image_id).located(
                        path, base + int(d.line[j])
                    )
                )
            else:
                firsts.append(j)
                seen.add(image_id)
        if bad:
            if not self.skip_bad_rows:
                raise ConversionError(
                    f"{bad[0]}\nThis row cannot be converted. Replace the file (an interrupted download or "
                    "unzip?), or set data.skip_bad_rows=true to skip such rows (they are counted and "
                    f"reported). The {self.images():,} images converted so far are kept: running prepare "
                    "again continues from this chunk."
                )
            self.state.skipped += len(bad)
            self.state.examples = (self.state.examples + bad)[:5]
            for message in bad:
                log.warning("skipped %s", message)
        return firsts

    def images(self) -> int:
        return sum(w.num_images for w in self.writers.values())

    def note(self) -> str:
        """The progress bar's note: images written, and bad rows skipped if any."""
        skipped = self.state.skipped
        return f"{self.images():,} images" + (f", {skipped:,} bad rows skipped" if skipped else "")

    def save(self) -> None:
        """Flush the files, then record that they hold everything before `next_chunk`."""
        for w in self.writers.values():
            w.flush()
        self.state.splits = {s: (w.num_images, w.num_boxes) for s, w in self.writers.items()}
        atomic_write_text(self.state_path, self.state.to_json())

    def abandon(self) -> None:
        """After an error: keep what was converted up to the last complete chunk, for the next run."""
        try:
            self.save()
        except Exception:  # the files themselves are the problem (disk full): start over next time
            self.state_path.unlink(missing_ok=True)
        for w in self.writers.values():
            w.close()


#: room kept free beyond what a write needs: HDF5's chunk caches (1 MiB per dataset) and metadata
#: must still be flushable, since h5py cannot close a file whose flush failed (it crashes later)
HEADROOM_BYTES = 64 * 2**20


def ensure_room(folder: Path, need: int, what: str) -> None:
    """Stop with `DiskFullError` before writing `need` bytes into `folder` leaves less than
    `HEADROOM_BYTES` free: the files written so far then close cleanly and stay usable."""
    free = shutil.disk_usage(folder).free
    if free < need + HEADROOM_BYTES:
        words = f"{free:,} bytes free"
        raise DiskFullError(
            f"disk full: {words} in {folder}, {what} needs about {need + HEADROOM_BYTES:,} "
            f"(with {HEADROOM_BYTES // 2**20} MiB kept for HDF5's caches)",
            words=words,
        )


def splits_of_images(wanted: dict[str, Iterable[int]]) -> dict[int, list[str]]:
    """Invert split -> image ids into image id -> splits."""
    out: dict[int, list[str]] = {}
    for split, ids in wanted.items():
        for i in ids:
            out.setdefault(int(i), []).append(split)
    return out
