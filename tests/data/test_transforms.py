"""`data.targets=binary` and `data.normalize_features=l2`: exact values, both stores, training only."""

from dataclasses import fields

import h5py
import numpy as np
import pytest
import torch

from butd.cache.load import load_cache
from butd.config.data import DataConfig
from butd.data.datamodule import VQABatches, VQADataModule
from butd.data.stores import TensorSplit
from butd.data.transforms import binary_scores, l2_normalize
from butd.errors import ConfigError
from tests.conftest import TINY_ADAPTIVE, TINY_DATA, compose_train


def test_binary_scores_keep_each_rows_best_answers_ties_included():
    offsets = np.array([0, 3, 3, 5, 6])  # row 1 is empty: no answer in the vocabulary
    scores = np.array([0.3, 1.0, 0.6, 0.9, 0.9, 0.3], np.float32)
    got = binary_scores(offsets, scores)
    assert got.dtype == np.float32
    assert got.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert binary_scores(np.array([0, 2]), np.array([0.0, 0.0], np.float32)).tolist() == [0.0, 0.0]


def test_l2_normalize_divides_each_vector_by_its_norm_and_leaves_zeros():
    features = np.array([[[3.0, 4.0], [0.0, 0.0]], [[0.0, -2.0], [1.0, 1.0]]], np.float16)
    out = l2_normalize(features, block=3)  # a block boundary inside the array
    assert out is features
    expected = np.array([[[0.6, 0.8], [0.0, 0.0]], [[0.0, -1.0], [2**-0.5, 2**-0.5]]], np.float16)
    np.testing.assert_array_equal(out, expected)


def test_the_settings_are_checked_with_the_values_named():
    expected = r"data.targets='hard' is invalid; expected one of \['soft', 'binary'\]"
    with pytest.raises(ConfigError, match=expected):
        DataConfig.from_dict({"name": "x", "raw_dir": "r", "cache_dir": "c", "targets": "hard"})
    with pytest.raises(ConfigError, match=r"data.normalize_features='l1' is invalid; expected one of"):
        DataConfig.from_dict({"name": "x", "raw_dir": "r", "cache_dir": "c", "normalize_features": "l1"})


@pytest.fixture(scope="module")
def fixed(tiny_data_dir):
    cfg = compose_train(TINY_DATA, data_dir=tiny_data_dir, output_dir=tiny_data_dir / "x")
    return load_cache(DataConfig.from_dict(cfg.data))


@pytest.fixture(scope="module")
def adaptive(tiny_adaptive_dir):
    cfg = compose_train(TINY_ADAPTIVE, data_dir=tiny_adaptive_dir, output_dir=tiny_adaptive_dir / "x")
    return load_cache(DataConfig.from_dict(cfg.data))


def both_stores(path, num_answers: int, **read) -> tuple[VQABatches, TensorSplit]:
    h5 = VQABatches(path, num_answers=num_answers, **read)
    return h5, TensorSplit.load(path, num_answers=num_answers, **read)


def test_binary_targets_in_both_stores(fixed):
    path = fixed.split_path("train")
    soft = VQABatches(path, num_answers=fixed.num_answers)
    h5, tensors = both_stores(path, fixed.num_answers, targets="binary")
    idx = list(range(len(soft)))
    dense = soft[idx].target
    # written out question by question: 1 where the row's best positive score is
    expected = torch.zeros_like(dense)
    for i, row in enumerate(dense):
        if row.max() > 0:
            expected[i] = (row == row.max()).float()
    assert torch.equal(h5[idx].target, expected)
    assert torch.equal(tensors[idx].target, expected)
    assert (expected.sum(1) >= 1).sum() > len(idx) // 2 and set(expected.unique().tolist()) == {0.0, 1.0}
    assert (dense[expected.sum(1) == 0].sum(1) == 0).all()  # all zero only where no answer scores


@pytest.mark.parametrize("which", ["fixed", "adaptive"])
def test_l2_features_in_both_stores(which, request):
    info = request.getfixturevalue(which)
    path = info.split_path("val")
    h5, tensors = both_stores(path, info.num_answers, normalize_features="l2")
    idx = [0, 3, len(h5) - 1, 3]
    a, b = h5[idx], tensors[idx]
    assert a.v.dtype == b.v.dtype == torch.float16
    assert torch.equal(a.v, b.v) and torch.equal(a.b, b.b)
    with h5py.File(path) as f:
        offsets, stored = f["images/box_offsets"][:], f["images/features"][:].astype(np.float32)
    for i, r in enumerate(h5.image_index[idx]):
        boxes = stored[offsets[r] : offsets[r + 1]]
        expected = (boxes / np.linalg.norm(boxes, axis=1, keepdims=True)).astype(np.float16)
        c = len(boxes)
        np.testing.assert_allclose(a.v[i, :c].numpy(), expected, atol=1e-3)
        assert not a.v[i, c:].any()  # padded boxes stay zero
    norms = a.v.float().norm(dim=-1)
    real = a.v_mask if a.v_mask is not None else torch.ones_like(norms, dtype=torch.bool)
    torch.testing.assert_close(norms[real], torch.ones_like(norms[real]), atol=2e-3, rtol=0)


@pytest.mark.parametrize("store", ["h5", "ram"])
def test_training_batches_are_binary_and_validation_stays_soft(tiny_data_dir, tmp_path, store):
    def module(targets: str) -> VQADataModule:
        cfg = compose_train(
            [*TINY_DATA, f"data.targets={targets}", f"data.feature_store={store}"],
            data_dir=tiny_data_dir,
            output_dir=tmp_path,
        )
        dm = VQADataModule(DataConfig.from_dict(cfg.data))
        dm.setup("fit")
        return dm

    soft, binary = module("soft"), module("binary")
    val_soft, val_binary = next(iter(soft.val_dataloader())), next(iter(binary.val_dataloader()))
    for field in fields(val_soft):
        x, y = getattr(val_soft, field.name), getattr(val_binary, field.name)
        assert (x is None and y is None) or torch.equal(x, y), field.name
    train_soft, train_binary = next(iter(soft.train_dataloader())), next(iter(binary.train_dataloader()))
    assert torch.equal(train_soft.question_id, train_binary.question_id)  # the same order
    assert not torch.equal(train_soft.target, train_binary.target)
    assert set(train_binary.target.unique().tolist()) == {0.0, 1.0}
    assert set(val_binary.target.unique().tolist()) > {0.0, 1.0}  # soft scores (0.3, 0.6, ...)
