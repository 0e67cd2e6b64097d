"""Batches from the processed cache.

A dataset item here is a whole batch: the sampler yields lists of question indices, and
the dataset reads the features of their images from HDF5 in one call and builds the
dense targets with numpy. Nothing is done per question in Python.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from butd.cache.load import CacheInfo, load_cache
from butd.cache.manifest import CacheError, prepare_command
from butd.config.data import DATA_FORMATS, DataConfig
from butd.data.batch import QuestionTables, VQABatch, read_features
from butd.data.priors import QuestionTypes
from butd.data.sampling import EpochBatchSampler
from butd.data.splits import SplitTables, padded_boxes
from butd.data.stores import TensorBatchLoader, TensorSplit, choose_store, split_nbytes
from butd.vqa.gqa import GQATables

log = logging.getLogger(__name__)


class VQABatches(Dataset):
    """Prepared split(s); `dataset[[i, j, ...]]` returns the `VQABatch` of those questions.

    Small tables (tokens, image rows, targets, box geometry) live in memory; the features stay
    in HDF5, one contiguous read per image of the batch, with one file handle per process.
    Several files (`data.train_splits`) act as one split. `targets` and `normalize_features`
    are `data.targets` and `data.normalize_features` (`butd.data.batch`).
    """

    def __init__(
        self,
        paths: Path | Sequence[Path],
        *,
        num_answers: int,
        use_boxes: int | None = None,
        rebuild: str = "python -m butd.prepare",
        targets: str = "soft",
        normalize_features: str = "none",
    ) -> None:
        self.paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        self.path = self.paths[0]
        self.num_answers = num_answers
        #: read only the first K boxes of each image (None: all)
        self.use_boxes = use_boxes
        #: the command that rebuilds these files, for error messages
        self.rebuild = rebuild
        with _readable(self.paths, rebuild):
            t = SplitTables.load(self.paths)
            spatial = []
            for path in self.paths:
                with h5py.File(path, "r") as f:
                    spatial.append(f["images/spatial"][:])
        self.tables = t
        self.image_index = t.image_index
        self.counts = t.counts(use_boxes)
        self.max_boxes = int(self.counts.max(initial=0))
        #: every image has the same number of boxes: no padding, no mask
        self.fixed = bool((self.counts == self.max_boxes).all())
        file_base = np.cumsum([0] + [len(s) for s in spatial])[t.image_file]
        self.spatial = np.concatenate(spatial)
        self._spatial_start = t.box_start + file_base
        #: the question side of every batch, with `targets` applied (`butd.data.batch`)
        self.questions = QuestionTables(t, num_answers=num_answers, targets=targets)
        self.has_targets = t.has_targets
        self._h5: list[h5py.Dataset] | None = None
        self._pid: int | None = None
        self.normalize_features = normalize_features

    def __len__(self) -> int:
        return len(self.questions)

    def _features(self) -> list[h5py.Dataset]:
        # h5py handles must not cross a fork: reopen in each loader worker.
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = [h5py.File(p, "r")["images/features"] for p in self.paths]
            self._pid = os.getpid()
        return self._h5

    def images(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features float16 [n, K, D], spatial float32 [n, K, 6] and mask [n, K] of image rows."""
        t = self.tables
        counts = self.counts[rows]
        width = self.max_boxes if self.fixed else int(counts.max(initial=1))
        alloc = np.empty if self.fixed else np.zeros
        feats = alloc((len(rows), width, t.feature_dim), np.float16)
        with _readable(self.paths, self.rebuild):
            files = self._features()
            # one contiguous slice per image: h5py's list indexing is ~30x slower
            for i, (r, c) in enumerate(zip(rows.tolist(), counts.tolist(), strict=True)):
                start = int(t.box_start[r])
                feats[i, :c] = files[t.image_file[r]][start : start + c]
        read_features(feats, self.normalize_features)
        pos, valid = padded_boxes(self._spatial_start[rows], counts, width)
        spatial = self.spatial[pos]
        spatial[~valid] = 0
        return feats, spatial, valid

    def __getitem__(self, indices: list[int]) -> VQABatch:
        idx = np.asarray(indices, dtype=np.int64)
        rows, inverse = np.unique(self.image_index[idx], return_inverse=True)
        feats, spatial, valid = self.images(rows)
        return self.questions.batch(
            torch.from_numpy(idx),
            v=torch.from_numpy(feats[inverse]),  # float16: the model's first layer casts it
            b=torch.from_numpy(spatial[inverse]),
            v_mask=None if self.fixed else torch.from_numpy(valid[inverse]),
        )


class VQADataModule(pl.LightningDataModule):
    """Reads the cache that `butd.prepare` builds (the entry points prepare a missing one first:
    `butd.preparation.build.prepared_cache`); a missing cache is an error naming the command."""

    def __init__(self, config: DataConfig, *, shuffle_seed: int = 0) -> None:
        """`config`: the validated data config (`DataConfig.from_dict`, which `butd.train` calls once)."""
        super().__init__()
        self.cfg = config
        #: seeds the training order with the epoch (`EpochBatchSampler`); train passes `seed`
        self.shuffle_seed = shuffle_seed
        self._info: CacheInfo | None = None
        self.datasets: dict[str, VQABatches | TensorSplit] = {}
        self._store: str | None = None
        self._train_sampler: EpochBatchSampler | None = None
        self._resume_position: dict[str, int] | None = None
        self._prepared = False
        self._question_types: QuestionTypes | None = None
        self._question_types_read = False
        #: split -> its GQA tables and the answers (`gqa_tables`), read once
        self._gqa: dict[str, tuple[GQATables, list[str]] | None] = {}

    def prepare_data(self) -> None:
        # only reads: `butd.train` checks the cache before it builds the model and Lightning calls
        # this again in `fit`: check it once per datamodule
        if self._prepared:
            return
        load_cache(self.cfg)
        self._prepared = True

    def gqa_tables(self, stage: str) -> tuple[GQATables, list[str]] | None:
        """The GQA tables of the split a stage scores (`val`: data.val_split, `test`: data.test_split)
        and the answer list, for the official GQA metrics; None unless the cache is GQA's."""
        split = self.cfg.val_split if stage == "val" else self.cfg.test_split
        if not DATA_FORMATS[self.cfg.format].own_layout or split is None:
            return None
        if split not in self._gqa:
            tables = GQATables.read(self.info.split_path(split))
            self._gqa[split] = None if tables is None else (tables, self.info.answers())
        return self._gqa[split]

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
            splits = dict.fromkeys([*self.cfg.training_splits, self.cfg.val_split])
            paths = [self.info.split_path(s) for s in splits]

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

    def dataset(self, splits: str | Sequence[str], *, training: bool = False) -> VQABatches | TensorSplit:
        """The prepared split (or splits, concatenated) in the configured store; `training`: with
        the training targets (`data.targets`; evaluation always reads the soft scores)."""
        splits = (splits,) if isinstance(splits, str) else tuple(splits)
        targets = self.cfg.targets if training else "soft"
        key = "+".join(splits) + ("" if targets == "soft" else f":{targets}")
        if key not in self.datasets:
            paths, num_answers = [self.info.split_path(s) for s in splits], self.info.num_answers
            read = {"targets": targets, "normalize_features": self.cfg.normalize_features}
            if self.store == "h5":
                self.datasets[key] = VQABatches(
                    paths,
                    num_answers=num_answers,
                    use_boxes=self.cfg.use_boxes,
                    rebuild=self._rebuild,
                    **read,
                )
            else:
                with _readable(paths, self._rebuild):
                    self.datasets[key] = TensorSplit.load(
                        paths,
                        num_answers=num_answers,
                        use_boxes=self.cfg.use_boxes,
                        device=self._device(),
                        **read,
                    )
            if self.question_types is not None:
                self.datasets[key].questions.set_question_types(self.question_types)
        return self.datasets[key]

    @property
    def question_types(self) -> QuestionTypes | None:
        """The training splits' question types and prior (None without question types)."""
        if not self._question_types_read:
            self._question_types_read = True
            paths = [self.info.split_path(s) for s in self.cfg.training_splits]
            with _readable(paths, self._rebuild):
                tables = SplitTables.load(paths)
            self._question_types = (
                QuestionTypes.of(tables, self.info.num_answers) if tables.has_targets else None
            )
        return self._question_types

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            if self.cfg.val_split in self.cfg.train_splits:
                log.warning(
                    "data.train_splits=%s includes the validation split '%s': val/score is no longer a "
                    "held-out estimate",
                    self.cfg.train_splits,
                    self.cfg.val_split,
                )
            self.dataset(self.cfg.training_splits, training=True)
        if stage in (None, "fit", "validate"):
            self.dataset(self.cfg.val_split)

    def _loader(self, split: str | Sequence[str], *, shuffle: bool) -> DataLoader | TensorBatchLoader:
        ds = self.dataset(split, training=shuffle)
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
        return self._loader(self.cfg.training_splits, shuffle=True)

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

    def test_dataloader(self) -> DataLoader | TensorBatchLoader:
        """`data.test_split`, evaluated once after training (`butd.train`)."""
        if self.cfg.test_split is None:
            raise ValueError("data.test_split is not set: there is no test split to evaluate")
        return self._loader(self.cfg.test_split, shuffle=False)


@contextmanager
def _readable(path: Path | Sequence[Path], rebuild: str) -> Iterator[None]:
    """Turns an HDF5 read failure (a truncated or damaged file) into a CacheError naming the file."""
    try:
        yield
    except (OSError, KeyError) as err:
        where = path if isinstance(path, str | Path) else " / ".join(map(str, path))
        raise CacheError(
            f"cannot read {where}: {err}. The file is truncated or damaged (an interrupted copy, "
            f"a full disk?). Rebuild the cache with `{rebuild}`."
        ) from err
