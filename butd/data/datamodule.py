"""Batches from the processed cache.

A dataset item here is a whole batch: the sampler yields lists of question indices, and
the dataset reads the features of their images from HDF5 in one call and builds the
dense targets with numpy. Nothing is done per question in Python.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from butd.data.cache import CacheError, CacheInfo, load_cache, prepare, prepare_command
from butd.data.config import DataConfig
from butd.data.official import answer_type_codes, gather_rows
from butd.data.sampling import EpochBatchSampler
from butd.data.stores import TensorBatchLoader, TensorSplit, choose_store, split_nbytes


class VQABatches(Dataset):
    """One prepared split; `dataset[[i, j, ...]]` returns the batch of those questions.

    Small per-question tables (tokens, image rows, sparse targets) live in memory; the
    features stay in HDF5 and are read lazily, with one file handle per process.
    """

    def __init__(
        self,
        path: Path,
        *,
        num_answers: int,
        use_boxes: int | None = None,
        rebuild: str = "python -m butd.prepare",
    ) -> None:
        self.path = Path(path)
        self.num_answers = num_answers
        #: read only the first K boxes of each image (None: all)
        self.use_boxes = use_boxes
        #: the command that rebuilds this file, for error messages
        self.rebuild = rebuild
        with _readable(self.path, rebuild), h5py.File(self.path, "r") as f:
            q = f["questions"]
            self.question_id = q["question_id"][:]
            self.image_index = q["image_index"][:]
            self.tokens = q["tokens"][:].astype(np.int64)
            self.has_targets = bool(f.attrs["has_targets"])
            if self.has_targets:
                self.offsets = f["targets/offsets"][:]
                self.labels = f["targets/labels"][:].astype(np.int64)
                self.scores = f["targets/scores"][:]
                # the official metric's per-answer accuracies (butd.data.official)
                self.acc_offsets = f["vqa_acc/offsets"][:]
                self.acc_labels = f["vqa_acc/labels"][:].astype(np.int64)
                self.acc_scores = f["vqa_acc/scores"][:]
                self.answer_type = answer_type_codes(q["answer_type"].asstr()[:])
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.question_id)

    def _images(self) -> h5py.Group:
        # h5py handles must not cross a fork: reopen in each loader worker.
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5["images"]

    def dense_targets(self, idx: np.ndarray) -> np.ndarray:
        """Soft scores of questions `idx` as a dense [len(idx), num_answers] float32 matrix."""
        labels, scores = gather_rows(self.offsets, self.labels, self.scores, idx)
        out = np.zeros((len(idx), self.num_answers + 1), np.float32)
        labels[labels < 0] = self.num_answers  # padding lands in a column dropped below
        np.put_along_axis(out, labels, scores, axis=1)
        return out[:, : self.num_answers]

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        rows, inverse = np.unique(self.image_index[idx], return_inverse=True)
        boxes = slice(None, self.use_boxes)
        with _readable(self.path, self.rebuild):
            images = self._images()
            feats = images["features"][rows, boxes]  # h5py wants increasing indices
            spatial = images["spatial"][rows, boxes]
        batch = {
            "v": torch.from_numpy(feats[inverse].astype(np.float32)),
            "b": torch.from_numpy(spatial[inverse]),
            "q": torch.from_numpy(self.tokens[idx]),
            "question_id": torch.from_numpy(self.question_id[idx]),
        }
        if self.has_targets:
            batch["target"] = torch.from_numpy(self.dense_targets(idx))
            labels, accs = gather_rows(self.acc_offsets, self.acc_labels, self.acc_scores, idx)
            batch["acc_labels"], batch["acc_values"] = torch.from_numpy(labels), torch.from_numpy(accs)
            batch["answer_type"] = torch.from_numpy(self.answer_type[idx])
        return batch


class VQADataModule(pl.LightningDataModule):
    """Reads the cache that `butd.prepare` builds; for the synthetic set, builds it first."""

    def __init__(self, *, shuffle_seed: int = 0, **data: Any) -> None:
        super().__init__()
        self.cfg = DataConfig.from_dict(data)
        #: seeds the training order with the epoch (`EpochBatchSampler`); train passes `seed`
        self.shuffle_seed = shuffle_seed
        self._info: CacheInfo | None = None
        self.datasets: dict[str, VQABatches | TensorSplit] = {}
        self._store: str | None = None
        self._train_sampler: EpochBatchSampler | None = None
        self._resume_position: dict[str, int] | None = None

    def prepare_data(self) -> None:
        if self.cfg.auto_prepare:
            ensure_prepared(self.cfg)
        else:
            load_cache(self.cfg)

    @property
    def info(self) -> CacheInfo:
        if self._info is None:
            self._info = load_cache(self.cfg)
        return self._info

    @property
    def _rebuild(self) -> str:
        return f"{prepare_command(self.cfg)} force=true"

    @property
    def store(self) -> str:
        """The feature store in use, with `auto` resolved by what fits where."""
        if self._store is None:
            paths = [self.info.split_path(s) for s in (self.cfg.train_split, self.cfg.val_split)]

            def nbytes(path: Path) -> int:
                with _readable(path, self._rebuild):
                    return split_nbytes(path)

            self._store = choose_store(self.cfg.feature_store, paths, size_of=nbytes)
        return self._store

    def _device(self) -> torch.device:
        if self.store != "gpu":
            return torch.device("cpu")
        if self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cuda")

    def dataset(self, split: str) -> VQABatches | TensorSplit:
        if split not in self.datasets:
            path, num_answers = self.info.split_path(split), self.info.num_answers
            if self.store == "h5":
                self.datasets[split] = VQABatches(
                    path,
                    num_answers=num_answers,
                    use_boxes=self.cfg.use_boxes,
                    rebuild=self._rebuild,
                )
            else:
                with _readable(path, self._rebuild):
                    self.datasets[split] = TensorSplit.load(
                        path, num_answers=num_answers, use_boxes=self.cfg.use_boxes, device=self._device()
                    )
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.dataset(self.cfg.train_split)
        if stage in (None, "fit", "validate"):
            self.dataset(self.cfg.val_split)

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader | TensorBatchLoader:
        ds = self.dataset(split)
        trainer = self.trainer
        sampler = EpochBatchSampler(
            len(ds),
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )
        if shuffle:
            self._train_sampler = sampler
            if self._resume_position is not None:
                sampler.resume_at(**self._resume_position)
                self._resume_position = None
        if isinstance(ds, TensorSplit):
            return TensorBatchLoader(ds, sampler)
        return DataLoader(
            ds,
            sampler=sampler,
            batch_size=None,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            # worker seeds come from here, not from the global RNG that dropout uses
            generator=torch.Generator().manual_seed(self.shuffle_seed),
        )

    def train_dataloader(self) -> DataLoader | TensorBatchLoader:
        return self._loader(self.cfg.train_split, shuffle=True)

    def state_dict(self) -> dict[str, Any]:
        """Where the training order stands; saved in every checkpoint so a resume continues it."""
        if self._train_sampler is None or self.trainer is None:
            return {}
        position = self._train_sampler.position(
            batches_done=self.trainer.fit_loop.epoch_loop.batch_progress.current.processed,
            batches_per_epoch=self.trainer.num_training_batches,
        )
        return {"train_order": position}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_position = state_dict.get("train_order")
        # Lightning looks for the position on the loader, not here, and would warn that a
        # mid-epoch resume repeats batches; the sampler skips them, so the warning is wrong.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")

    def val_dataloader(self) -> DataLoader | TensorBatchLoader:
        return self._loader(self.cfg.val_split, shuffle=False)


@contextmanager
def _readable(path: Path, rebuild: str) -> Iterator[None]:
    """Turns an HDF5 read failure (a truncated or damaged file) into a CacheError naming the file."""
    try:
        yield
    except (OSError, KeyError) as err:
        raise CacheError(
            f"cannot read {path}: {err}. The file is truncated or damaged (an interrupted copy, "
            f"a full disk?). Rebuild the cache with `{rebuild}`."
        ) from err


def ensure_raw(cfg: DataConfig, *, progress: bool = True) -> None:
    """Generate the raw files when the config describes a synthetic set and they are stale."""
    if cfg.synthetic is None:
        return
    from butd.data.synthetic import SyntheticSpec, generate

    spec_file = cfg.raw_path / "synthetic_spec.json"
    wanted = json.dumps(cfg.synthetic, sort_keys=True)
    if not spec_file.is_file() or spec_file.read_text() != wanted:
        generate(cfg.raw_path, SyntheticSpec(**cfg.synthetic), progress=progress)
        spec_file.write_text(wanted)


def ensure_prepared(cfg: DataConfig, *, progress: bool = True) -> CacheInfo:
    """Raw files (if generated) and then the cache; both steps skip what is already current."""
    ensure_raw(cfg, progress=progress)
    return prepare(cfg, progress=progress)
