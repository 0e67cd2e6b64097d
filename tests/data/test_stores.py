"""Tensor-resident splits give the same batches as the HDF5 path, in a resumable order."""

from dataclasses import fields

import h5py
import numpy as np
import pytest
import torch

from butd.cache.load import load_cache
from butd.config.data import DataConfig
from butd.data.batch import VQABatch
from butd.data.datamodule import VQABatches
from butd.data.sampling import EpochBatchSampler
from butd.data.stores import TensorBatchLoader, TensorSplit, choose_store
from butd.vqa.csr import padded_targets
from tests.conftest import TINY_ADAPTIVE, TINY_DATA, compose_train


@pytest.fixture(scope="module")
def val_path(tiny_data_dir):
    cfg = compose_train(TINY_DATA, data_dir=tiny_data_dir, output_dir=tiny_data_dir / "x")
    info = load_cache(DataConfig.from_dict(cfg.data))
    return info.split_path("val"), info.num_answers


def test_padded_targets_scatter_to_the_csr_content():
    offsets = np.array([0, 2, 2, 5])
    labels = np.array([3, 1, 0, 4, 2], np.int32)
    scores = np.array([0.3, 1.0, 0.6, 0.9, 0.3], np.float32)
    table_labels, table_scores = padded_targets(offsets, labels, scores, pad_label=5)
    assert table_labels.shape == (3, 3)
    dense = np.zeros((3, 6), np.float32)
    np.put_along_axis(dense, table_labels, table_scores, axis=1)
    expected = np.zeros((3, 5), np.float32)
    expected[0, [3, 1]] = [0.3, 1.0]
    expected[2, [0, 4, 2]] = [0.6, 0.9, 0.3]
    np.testing.assert_array_equal(dense[:, :5], expected)


def test_tensor_batches_equal_hdf5_batches(val_path):
    path, num_answers = val_path
    h5 = VQABatches(path, num_answers=num_answers)
    tensors = TensorSplit.load(path, num_answers=num_answers)
    idx = [5, 0, 17, 3, 3, len(h5) - 1]
    a, b = h5[idx], tensors.batch(torch.tensor(idx))
    assert isinstance(a, VQABatch) and isinstance(b, VQABatch)
    # features stay as stored until the model's first layer casts them: no float32 copy per batch
    assert a.v.dtype == b.v.dtype == torch.float16
    _assert_same_batches(a, b)
    assert a.v_mask is None  # every image has its 6 boxes: no padding
    # the official-accuracy rows: padded with -1 / 0 to the split's widest row
    assert (a.acc_labels == -1).any() and not a.acc_values[a.acc_labels == -1].any()
    assert tensors.questions.target_labels.shape[1] <= 10  # one slot per distinct annotator answer at most


def test_loader_follows_its_sampler_epoch_by_epoch(val_path):
    path, num_answers = val_path
    split = TensorSplit.load(path, num_answers=num_answers)

    def ids(loader) -> list[int]:
        return torch.cat([b.question_id for b in loader]).tolist()

    sampler = EpochBatchSampler(len(split), batch_size=7, shuffle=True, seed=3)
    loader = TensorBatchLoader(split, sampler)
    first = ids(loader)
    assert sorted(first) == sorted(split.questions.question_id.tolist())  # every question once
    assert len(loader) == -(-len(split) // 7)
    loader.sampler.set_epoch(1)  # what Lightning calls each epoch
    second = ids(loader)
    assert second != first
    # a fresh loader (a resumed run) at epoch 1 sees epoch 1's order
    again = EpochBatchSampler(len(split), batch_size=7, shuffle=True, seed=3)
    again.set_epoch(1)
    assert ids(TensorBatchLoader(split, again)) == second


def test_ranks_share_out_the_questions(val_path):
    path, num_answers = val_path
    split = TensorSplit.load(path, num_answers=num_answers)
    shards = [
        ids
        for r in range(2)
        for ids in [
            torch.cat(
                [
                    b.question_id
                    for b in TensorBatchLoader(
                        split,
                        EpochBatchSampler(len(split), batch_size=4, shuffle=False, num_replicas=2, rank=r),
                    )
                ]
            )
        ]
    ]
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert sorted(torch.cat(shards).tolist()) == sorted(split.questions.question_id.tolist())


def test_auto_store_picks_ram_on_a_cpu_for_a_small_set(val_path):
    path, _ = val_path
    expected = "gpu" if torch.cuda.is_available() else "ram"
    assert choose_store("auto", [path]) == expected
    assert choose_store("h5", [path]) == "h5"


@pytest.fixture(scope="module")
def adaptive(tiny_adaptive_dir):
    cfg = compose_train(TINY_ADAPTIVE, data_dir=tiny_adaptive_dir, output_dir=tiny_adaptive_dir / "x")
    return load_cache(DataConfig.from_dict(cfg.data))


def _assert_same_batches(a: VQABatch, b: VQABatch) -> None:
    """Every field of the two batches is equal, dtypes included (None where one is None)."""
    assert a.v.dtype == b.v.dtype == torch.float16
    for field in fields(VQABatch):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert (x is None) == (y is None), field.name
        assert x is None or (x.dtype == y.dtype and torch.equal(x, y)), field.name


@pytest.mark.parametrize("use_boxes", [None, 5])
def test_adaptive_batches_pad_to_their_largest_image_and_mask_the_rest(adaptive, use_boxes):
    path, num_answers = adaptive.split_path("train"), adaptive.num_answers
    h5 = VQABatches(path, num_answers=num_answers, use_boxes=use_boxes)
    tensors = TensorSplit.load(path, num_answers=num_answers, use_boxes=use_boxes)
    assert not h5.fixed and not tensors.fixed
    idx = [7, 0, 33, 3, 3, len(h5) - 1]
    a, b = h5[idx], tensors[idx]
    _assert_same_batches(a, b)

    with h5py.File(path) as f:
        offsets = f["images/box_offsets"][:]
        features = f["images/features"][:]
    rows = h5.image_index[idx]
    counts = np.diff(offsets)[rows]
    if use_boxes:
        counts = np.minimum(counts, use_boxes)
    assert a.v.shape[1] == counts.max() and a.v_mask.sum(1).tolist() == counts.tolist()
    for i, (r, c) in enumerate(zip(rows, counts, strict=True)):
        expected = features[offsets[r] : offsets[r] + c].astype(np.float32)
        np.testing.assert_array_equal(a.v[i, :c].numpy(), expected)
        assert not a.v[i, c:].any() and not a.b[i, c:].any()  # padding is zero


def test_splits_trained_together_are_one_concatenated_split(adaptive):
    paths, num_answers = [adaptive.split_path("train"), adaptive.split_path("val")], adaptive.num_answers
    both = VQABatches(paths, num_answers=num_answers)
    train, val = (VQABatches(p, num_answers=num_answers) for p in paths)
    assert len(both) == len(train) + len(val)
    tensors = TensorSplit.load(paths, num_answers=num_answers)
    idx = [1, len(train) + 2, 0, len(both) - 1]
    joint = both[idx]
    _assert_same_batches(joint, tensors[idx])
    parts = train[[1, 0]], val[[2, len(val) - 1]]
    assert joint.question_id.tolist() == [
        parts[0].question_id[0],
        parts[1].question_id[0],
        parts[0].question_id[1],
        parts[1].question_id[1],
    ]
    # an image's boxes come from its own file, whatever the joint width
    for j, (part, k) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        c = int(parts[part].v_mask[k].sum())
        assert torch.equal(joint.v[j, :c], parts[part].v[k, :c])
        assert torch.equal(joint.target[j], parts[part].target[k])
