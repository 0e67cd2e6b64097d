"""`butd.visualize`: attention pictures as PNG, on a blank canvas or on an image file."""

import h5py
import matplotlib
import numpy as np
import pytest

from butd.cache.load import load_cache
from butd.config.data import DataConfig
from butd.errors import UserError
from butd.visualize import visualize
from tests.conftest import TINY_DATA, compose_job, compose_train

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def image(tiny_data_dir) -> tuple[int, float, float]:
    """An image id of the val split with its width and height."""
    data = DataConfig.from_dict(
        compose_train(TINY_DATA, data_dir=tiny_data_dir, output_dir=tiny_data_dir / "x").data
    )
    with h5py.File(load_cache(data).split_path("val")) as f:
        w, h = f["images/size"][0]
        return int(f["images/image_id"][0]), float(w), float(h)


def _visualize(tiny_run, tiny_data_dir, tmp_path, *overrides):
    cfg = compose_job("visualize", [f"ckpt_path={tiny_run['ckpt']}", *overrides],
                      data_dir=tiny_data_dir, output_dir=tmp_path)  # fmt: skip
    return visualize(cfg)


def test_one_question_on_a_blank_canvas(tiny_run, tiny_data_dir, tmp_path, image):
    image_id, w, h = image
    path = _visualize(
        tiny_run, tiny_data_dir, tmp_path, f"image_id={image_id}", "question='what color is the cube?'"
    )
    assert path == tmp_path / f"attention_{image_id}.png" and path.stat().st_size > 10_000
    pixels = plt.imread(path)
    assert pixels.ndim == 3 and pixels.shape[1] > pixels.shape[0] * 0.9  # one panel and a colour bar
    # not a blank page: the boxes are shaded in colour (red channel above blue somewhere)
    assert (pixels[..., 0] - pixels[..., 2] > 0.3).mean() > 0.001


def test_a_grid_of_questions_on_the_image_file(tiny_run, tiny_data_dir, tmp_path, image):
    image_id, w, h = image
    folder = tmp_path / "coco"
    folder.mkdir()
    photo = np.zeros((int(h), int(w), 3))
    photo[..., 1] = np.linspace(0, 1, int(w))  # a green ramp, to be seen under the boxes
    plt.imsave(folder / f"COCO_val2014_{image_id:012d}.png", photo)
    questions = [
        "how many cubes are in the picture?",
        "is there a red cube?",
        "what shape is the red object?",
    ]
    out = tmp_path / "grid.png"
    args = [f"image_id={image_id}", f"questions={questions}", f"image_dir={folder}", f"out={out}"]
    path = _visualize(tiny_run, tiny_data_dir, tmp_path, *args)
    assert path == out
    pixels = plt.imread(path)
    single = plt.imread(
        _visualize(tiny_run, tiny_data_dir, tmp_path, f"image_id={image_id}", "question=what?")
    )
    assert pixels.shape[1] > 2 * single.shape[1]  # three panels side by side
    assert (pixels[..., 1] - pixels[..., 0] > 0.4).mean() > 0.01  # the green photo shows


def test_bad_inputs(tiny_run, tiny_data_dir, tmp_path, image):
    image_id, _, _ = image
    with pytest.raises(UserError, match=r"no image file for image .* COCO_val2014_"):
        _visualize(
            tiny_run,
            tiny_data_dir,
            tmp_path,
            f"image_id={image_id}",
            "question=what?",
            f"image_dir={tmp_path}",
        )
    with pytest.raises(UserError, match="image_id=3 is not in the cache"):
        _visualize(tiny_run, tiny_data_dir, tmp_path, "image_id=3", "question=what?")
    with pytest.raises(UserError, match="give question="):
        _visualize(tiny_run, tiny_data_dir, tmp_path, f"image_id={image_id}")
