"""Answer vectors for the two-stream classifier: GloVe means of an answer's words, and a user's
file of image vectors matched to the answer list by name."""

import numpy as np
import pytest

from butd.data.answer_vectors import AnswerVectorsError, answer_glove, answer_image_vectors
from butd.errors import UserError

ANSWERS = ["red", "black and white", "t-shirt", "2", "zebra"]


def _glove(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(
        "red 1 2 3\nand 0 0 6\nblack 2 0 0\nwhite 4 4 0\nt-shirt 0.5 0.25 1\nblue 9 9 9\nzebra 0 0 0\n",
        encoding="utf-8",
    )
    return path


def test_each_row_is_the_mean_of_the_answers_words_found_in_glove(tmp_path):
    rows = answer_glove(_glove(tmp_path), ANSWERS, 3)
    expected = np.array(
        [
            [1, 2, 3],  # red
            [2, 4 / 3, 2],  # mean of black, and, white
            [0.5, 0.25, 1],  # t-shirt is one word, as questions are tokenised
            [0, 0, 0],  # "2" is not in the file
            [0, 0, 0],  # a zero vector counts as absent
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(rows.vectors, expected)
    assert rows.vectors.dtype == np.float32 and rows.found == 3


def test_a_missing_glove_file_names_the_download_and_the_other_choice(tmp_path):
    with pytest.raises(UserError, match=r"glove.txt, which does not exist; .*download_vqa2.sh glove.*random"):
        answer_glove(tmp_path / "glove.txt", ANSWERS, 3)


def test_image_vectors_are_matched_to_the_answer_list_by_name(tmp_path):
    path = tmp_path / "img.npz"
    vectors = np.arange(10, dtype=np.float64).reshape(5, 2)
    np.savez(path, answers=np.array(ANSWERS[::-1]), vectors=vectors)
    rows = answer_image_vectors(path, ANSWERS, 2)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, vectors[::-1])


def test_a_file_that_does_not_match_the_answers_names_it_with_counts_and_examples(tmp_path):
    path = tmp_path / "img.npz"
    names = ["red", "blue", "green", "2", "zebra"]
    np.savez(path, answers=np.array(names), vectors=np.zeros((5, 2)))
    with pytest.raises(AnswerVectorsError) as err:
        answer_image_vectors(path, ANSWERS, 2)
    message = str(err.value)
    assert str(path) in message and "(5 answers, the file has 5)" in message
    assert "2 missing from the file (e.g. ['black and white', 't-shirt'])" in message
    assert "2 extra in the file (e.g. ['blue', 'green'])" in message


@pytest.mark.parametrize(
    "contents,message",
    [
        ({"answers": np.array(ANSWERS)}, r"lacks \['vectors'\]"),
        ({"answers": np.array(ANSWERS), "vectors": np.zeros((5, 3))}, r"`vectors` is float64 \(5, 3\)"),
        ({"answers": np.arange(5), "vectors": np.zeros((5, 2))}, r"`answers` is int64 \(5,\); expected 1-d"),
        (
            {"answers": np.array(["red", "red", "2", "zebra", "t-shirt"]), "vectors": np.zeros((5, 2))},
            r"1 answers appear twice, e.g. \['red'\]",
        ),
        (
            {"answers": np.array(ANSWERS), "vectors": np.array([[0, 1], [0, np.nan], *[[0, 0]] * 3])},
            r"the vector of answer 'black and white' is not finite",
        ),
    ],
    ids=["no-vectors", "wrong-width", "not-strings", "doubled", "nan"],
)
def test_a_malformed_file_is_named_with_what_is_wrong(tmp_path, contents, message):
    path = tmp_path / "img.npz"
    np.savez(path, **contents)
    with pytest.raises(AnswerVectorsError, match=message):
        answer_image_vectors(path, ANSWERS, 2)


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(AnswerVectorsError, match=r"img.npz does not exist; give an .npz file"):
        answer_image_vectors(tmp_path / "img.npz", ANSWERS, 2)
    (tmp_path / "img.npz").write_text("not a zip")
    with pytest.raises(AnswerVectorsError, match=r"img.npz is not a readable .npz"):
        answer_image_vectors(tmp_path / "img.npz", ANSWERS, 2)
