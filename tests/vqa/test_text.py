"""Tokenisation, vocabulary and GloVe loading against the reference's golden output."""

import json
from pathlib import Path

import numpy as np
import pytest

from butd.vqa.text import UnknownWordError, Vocabulary, load_glove, tokenize


@pytest.fixture(scope="module")
def golden(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "tokenize_visible.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def built(golden: dict) -> tuple[Vocabulary, list[list[int]]]:
    """A vocabulary filled question by question, as the reference's Dictionary was."""
    vocab = Vocabulary()
    ids = [vocab.add_question(q) for q in golden["questions"]]
    return vocab, ids


def test_tokens_match_golden(golden: dict) -> None:
    assert [tokenize(q) for q in golden["questions"]] == golden["words"]


def test_add_question_ids_and_maps_match_golden(golden: dict, built) -> None:
    vocab, ids = built
    assert ids == golden["tokens_add_word"]
    assert vocab.idx2word == golden["idx2word"]
    assert vocab.word2idx == golden["word2idx"]
    assert len(vocab) == vocab.ntoken == golden["ntoken"]
    assert vocab.padding_idx == golden["padding_idx"] == golden["ntoken"]


def test_padded_tokens_match_golden(golden: dict, built) -> None:
    vocab, _ = built
    encoded = [vocab.encode(q, max_len=14) for q in golden["questions"]]
    assert encoded == golden["padded_tokens_14"]


def test_encode_keeps_first_tokens_and_pads_front() -> None:
    vocab = Vocabulary(["a", "b", "c", "d"])
    assert vocab.encode("a b c d", max_len=2) == [0, 1]
    assert vocab.encode("d c", max_len=4) == [4, 4, 3, 2]
    assert vocab.encode("?", max_len=3) == [4, 4, 4]


def test_unknown_word_raises_without_unknown_token() -> None:
    vocab = Vocabulary(["what", "is", "this"])
    with pytest.raises(UnknownWordError, match="zebra") as info:
        vocab.encode("What is this zebra?")
    assert isinstance(info.value, KeyError)
    assert info.value.word == "zebra"
    # The reference looks every token up before truncating.
    with pytest.raises(UnknownWordError):
        vocab.encode("what is zebra", max_len=2)


def test_unknown_token_maps_unknown_words() -> None:
    vocab = Vocabulary(["what", "is", "this"], unknown_token="<unk>")
    assert vocab.word2idx["<unk>"] == 3 == vocab.unknown_idx
    assert len(vocab) == 4 and vocab.padding_idx == 4
    assert vocab.encode("what is this zebra", max_len=6) == [4, 4, 0, 1, 2, 3]
    assert vocab.unknown_words("Zebra is this zebra's?") == ["zebra", "zebra", "'s"]
    assert Vocabulary(["a"]).unknown_words("a b") == ["b"]


def test_json_round_trip_keeps_ids() -> None:
    vocab = Vocabulary(unknown_token="<unk>")
    vocab.add_question("How many dogs?")
    restored = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert restored.idx2word == vocab.idx2word
    assert restored.unknown_token == "<unk>"
    plain = Vocabulary(["x", "y"])
    assert Vocabulary.from_json(plain.to_json()).to_json() == {
        "words": ["x", "y"],
        "unknown_token": None,
    }


def test_rejects_duplicate_words_and_bad_max_len() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError):
        Vocabulary(["a"]).encode("a", max_len=0)


def _write_glove(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_load_glove_found_and_missing_words(tmp_path: Path) -> None:
    glove = _write_glove(
        tmp_path / "glove.txt",
        ["the 0.1 0.2 0.3", "café -1 0 2.5", "unused 9 9 9", "'s 1e-3 2 3"],
    )
    words = ["café", "missing", "the", "'s"]
    weights, found = load_glove(glove, words, dim=3)
    assert found == 3
    assert weights.dtype == np.float32 and weights.shape == (4, 3)
    np.testing.assert_array_equal(weights[0], np.float32([-1, 0, 2.5]))
    np.testing.assert_array_equal(weights[1], np.zeros(3, np.float32))
    np.testing.assert_array_equal(weights[2], np.float32([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(weights[3], np.float32([1e-3, 2, 3]))


def test_load_glove_wrong_value_count_names_file_and_line(tmp_path: Path) -> None:
    glove = _write_glove(tmp_path / "bad.txt", ["the 0.1 0.2 0.3", "cat 0.1 0.2"])
    with pytest.raises(ValueError, match=r"bad\.txt:2: expected a word and 3 values"):
        load_glove(glove, ["the"], dim=3)


def test_load_glove_non_numeric_value_names_line(tmp_path: Path) -> None:
    glove = _write_glove(tmp_path / "nan.txt", ["the 0.1 oops 0.3"])
    with pytest.raises(ValueError, match=r"nan\.txt:1"):
        load_glove(glove, ["the"], dim=3)
