"""The tiny GQA-format set the GQA tests share: the synthetic scenes written in GQA's formats."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import compose_train

#: `data=synthetic_gqa` made tiny: 3-6 boxes per image (objectsNum), 16-d features
TINY_GQA = [
    "data=synthetic_gqa",
    "data.synthetic.num_train_images=24",
    "data.synthetic.num_val_images=8",
    "data.synthetic.num_test_images=4",
    "data.synthetic.questions_per_image=4",
    "data.synthetic.num_boxes=6",
    "data.synthetic.min_boxes=3",
    "data.synthetic.max_objects=3",
    "data.synthetic.feature_dim=16",
    "data.synthetic.glove_dim=50",
    "data.emb_dim=50",
    "data.batch_size=16",
]


def gqa_config(data_dir: Path, overrides: list[str] = ()):
    """The typed data config of the tiny GQA set under `data_dir`."""
    from butd.config.data import DataConfig

    cfg = compose_train([*TINY_GQA, *overrides], data_dir=data_dir, output_dir=data_dir / "unused")
    return DataConfig.from_dict(cfg.data)
