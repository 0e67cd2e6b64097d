"""Question tokenisation, the word vocabulary and GloVe initialisation.

The rules follow the reference BUTD code so that word ids, padding and the embedding
matrix line up with its checkpoints:

* tokens: lower-case, delete ``,`` and ``?``, split ``'s`` off as its own token, split on
  whitespace (periods, colons, quotes and other apostrophes stay inside tokens);
* a question is encoded as its FIRST ``max_len`` token ids, padded at the FRONT with
  ``padding_idx == len(vocabulary)`` so that the last GRU step sees the last word;
* the reference has no unknown token: its vocabulary is built from every split
  (train, val and test) and a word missing from it raises ``KeyError``. That stays the
  default here (:class:`UnknownWordError`); ``unknown_token`` is the opt-in fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from butd.errors import UserError

DEFAULT_MAX_LEN = 14


def tokenize(question: str) -> list[str]:
    """Split a question into word tokens exactly as the reference does.

    The ``'s`` split happens after lower-casing, so ``"Who's"`` gives ``["who", "'s"]``;
    an empty question or a lone ``"?"`` gives no tokens at all.
    """
    text = question.lower().replace(",", "").replace("?", "").replace("'s", " 's")
    return text.split()


class UnknownWordError(KeyError):
    """A question word is missing from a vocabulary that has no unknown token.

    Derives from ``KeyError`` because that is what the reference raises, so callers that
    caught the reference's error keep working.
    """

    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word

    def __str__(self) -> str:
        return (
            f"word {self.word!r} is not in the vocabulary and it has no unknown token; "
            "build the vocabulary from every split or pass unknown_token"
        )


class Vocabulary:
    """Word <-> id map for question tokens, with the padding id just past the last word.

    Word ids follow insertion order, as in the reference. With ``unknown_token`` set, that
    token is appended after ``words`` (when not already among them), so the ids of the given
    words do not move, and every unknown word maps to it.
    """

    def __init__(self, words: Iterable[str] = (), *, unknown_token: str | None = None) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []
        for word in words:
            if word in self.word2idx:
                raise ValueError(f"duplicate word {word!r} in the vocabulary word list")
            self.add_word(word)
        self.unknown_token = unknown_token
        if unknown_token is not None:
            self.add_word(unknown_token)

    def __len__(self) -> int:
        """Number of words (the reference's ``ntoken``), padding excluded."""
        return len(self.idx2word)

    def __contains__(self, word: object) -> bool:
        return word in self.word2idx

    def __repr__(self) -> str:
        return f"Vocabulary(ntoken={len(self)}, unknown_token={self.unknown_token!r})"

    @property
    def ntoken(self) -> int:
        """Alias of ``len(self)``, the name the reference and the model config use."""
        return len(self.idx2word)

    @property
    def padding_idx(self) -> int:
        """Id used for front padding: the embedding row after the last word."""
        return len(self.idx2word)

    @property
    def unknown_idx(self) -> int | None:
        """Id of the unknown token, or None when unknown words are an error."""
        if self.unknown_token is None:
            return None
        return self.word2idx[self.unknown_token]

    def add_word(self, word: str) -> int:
        """Return the id of ``word``, giving it the next id if it is new."""
        idx = self.word2idx.get(word)
        if idx is None:
            idx = len(self.idx2word)
            self.word2idx[word] = idx
            self.idx2word.append(word)
        return idx

    def add_question(self, question: str) -> list[int]:
        """Tokenise ``question``, add its new words and return all its token ids."""
        return [self.add_word(token) for token in tokenize(question)]

    def lookup(self, word: str) -> int:
        """Id of one token; unknown words map to the unknown token or raise."""
        idx = self.word2idx.get(word)
        if idx is not None:
            return idx
        if self.unknown_token is None:
            raise UnknownWordError(word)
        return self.word2idx[self.unknown_token]

    def unknown_words(self, question: str) -> list[str]:
        """Tokens of ``question`` missing from the vocabulary, in order, repeats kept.

        Lets a caller report or count out-of-vocabulary words without encoding (and without
        the error that encoding raises when there is no unknown token).
        """
        return [token for token in tokenize(question) if token not in self.word2idx]

    def encode(self, question: str, max_len: int = DEFAULT_MAX_LEN) -> list[int]:
        """Return exactly ``max_len`` ids: the first ``max_len`` tokens, front-padded.

        Like the reference, every token is looked up before truncation, so without an
        unknown token an unknown word raises even when it lies past ``max_len``.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be positive, got {max_len}")
        ids = [self.lookup(token) for token in tokenize(question)][:max_len]
        return [self.padding_idx] * (max_len - len(ids)) + ids

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for the processed cache and for checkpoints."""
        return {"words": list(self.idx2word), "unknown_token": self.unknown_token}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_json`; word ids are preserved exactly."""
        unknown_token = data.get("unknown_token")
        words = list(data["words"])
        if unknown_token is not None and unknown_token not in words:
            raise ValueError(f"unknown token {unknown_token!r} is missing from the word list")
        return cls(words, unknown_token=unknown_token)


class GloveError(UserError, ValueError):
    """A GloVe line that cannot be used; the message names file and line."""


def load_glove(path: str | PathLike[str], vocabulary_words: list[str], dim: int) -> tuple[np.ndarray, int]:
    """Embedding rows for ``vocabulary_words`` from a GloVe text file, streamed line by line.

    Each line is ``word v1 ... v_dim`` separated by single spaces. Words absent from the
    file keep a zero row, as in the reference. The file is never held in memory: only the
    vectors of vocabulary words are parsed. Values are parsed as Python floats and then
    cast to float32, matching the reference's float64 -> float32 assignment bit for bit.
    A word listed twice in the file takes its last vector (the reference's dict overwrite).

    Returns the ``[len(vocabulary_words), dim]`` float32 matrix and the number of
    vocabulary words that were found.
    """
    path = Path(path)
    row_of = {word: row for row, word in enumerate(vocabulary_words)}
    weights = np.zeros((len(vocabulary_words), dim), dtype=np.float32)
    found: set[str] = set()
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise GloveError(
                    f"{path}:{line_no}: byte {err.start} of the line ({raw[err.start : err.start + 1]!r}) "
                    "is not UTF-8; GloVe's files are UTF-8. A damaged download? Fetch it again"
                ) from None
            parts = line.rstrip("\r\n").rstrip(" ").split(" ")
            if parts == [""]:
                continue
            if len(parts) != dim + 1:
                raise GloveError(
                    f"{path}:{line_no}: expected a word and {dim} values, got {len(parts) - 1} values"
                )
            row = row_of.get(parts[0])
            if row is None:
                continue
            weights[row] = _parse_vector(parts[1:], path, line_no)
            found.add(parts[0])
    return weights, len(found)


def _parse_vector(values: list[str], path: Path, line_no: int) -> np.ndarray:
    """Parse one GloVe vector, naming the file and line when a value is not a number."""
    try:
        vector = np.array([float(value) for value in values], dtype=np.float64)
    except ValueError as error:
        raise GloveError(f"{path}:{line_no}: non-numeric value in GloVe vector") from error
    finite = np.isfinite(vector) & (np.abs(vector) <= np.finfo(np.float32).max)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise GloveError(
            f"{path}:{line_no}: value {k + 1} of the vector is {values[k]!r}, not a finite float32 "
            "(training would diverge at its first step); fix the line or fetch the file again"
        )
    return vector
