"""What the cache check at open costs: `python scripts/benchmark_integrity.py`.

Times `butd.cache.integrity.check_split_file` on a split file of VQA v2 train's size (443,757
questions, 82,783 images x 36 boxes, 3,129 answers), written to a temporary folder; the features
are declared but not written, since the check never reads them (docs/reliability.md).
"""

import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from butd.cache import integrity
from butd.cache.manifest import BoxCounts, Counts, Manifest, SplitCounts

Q, N, K, T, A, V = 443_757, 82_783, 36, 14, 3129, 19_901
path = Path(tempfile.mkdtemp()) / "train.h5"
rng = np.random.default_rng(0)
nnz_per = 4
with h5py.File(path, "w") as f:
    q = f.create_group("questions")
    q["question_id"] = np.arange(Q, dtype=np.int64)
    q["image_id"] = rng.integers(0, 10**6, Q)
    q["image_index"] = rng.integers(0, N, Q).astype(np.int32)
    q["tokens"] = rng.integers(0, V + 1, (Q, T)).astype(np.int32)
    g = f.create_group("images")
    g.create_dataset("features", shape=(N * K, 2048), dtype=np.float16, chunks=(K, 2048))
    g.create_dataset("boxes", shape=(N * K, 4), dtype=np.float32, chunks=(K, 4))
    g.create_dataset("spatial", shape=(N * K, 6), dtype=np.float32, chunks=(K, 6))
    g["box_offsets"] = np.arange(N + 1, dtype=np.int64) * K
    g["counts"] = np.full(N, K, np.int64)
    g["image_id"] = np.arange(N, dtype=np.int64)
    g["size"] = np.ones((N, 2), np.float32)
    for t in ("targets", "vqa_acc"):
        h = f.create_group(t)
        h["offsets"] = np.arange(Q + 1, dtype=np.int64) * nnz_per
        h["labels"] = rng.integers(0, A, Q * nnz_per).astype(np.int32)
        h["scores"] = rng.random(Q * nnz_per).astype(np.float32)
split = SplitCounts(questions=Q, images=N, boxes=BoxCounts(min=K, mean=K, max=K))
counts = Counts(ntoken=V, num_answers=A, feature_dim=2048, splits={"train": split})
manifest = Manifest(format_version=3, settings={"max_question_len": T}, counts=counts)
for i in range(3):
    integrity._checked.clear()
    t = time.perf_counter()
    integrity.check_split_file(path, split=split, manifest=manifest, sources={}, rebuild="")
    print(f"check {i}: {time.perf_counter() - t:.3f} s")
t = time.perf_counter()
integrity.check_split_file(path, split=split, manifest=manifest, sources={}, rebuild="")
print(f"again in the same process (unchanged file): {time.perf_counter() - t:.4f} s")
print(f"file size {path.stat().st_size / 2**20:.0f} MiB")
path.unlink()
path.parent.rmdir()
