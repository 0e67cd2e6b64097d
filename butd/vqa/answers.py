"""Answer normalisation, the answer vocabulary and soft-score targets.

Normalisation reproduces the reference's ``preprocess_answer`` (itself a copy of the
official VQA evaluation rules) under Python 3, quirks included, because the answer
vocabulary and therefore the classifier's output rows depend on it:

* punctuation: whether a mark is deleted or replaced by a space is decided on the
  ORIGINAL input (mark next to a space, or any digit,digit anywhere), not on the text as
  it is being edited;
* periods: any ``.`` not followed by a digit is removed, but at most 32 of them, because
  the reference passes ``re.UNICODE`` (== 32) as the ``count`` argument of ``re.sub``;
* ``\\d`` has Python 3 semantics (any Unicode decimal digit), as the golden data records;
* number words ``zero``..``ten`` (and ``none``) become digits, articles are dropped, and the
  contraction table is applied word by word after lower-casing, so its capitalised keys
  (``Im``, ``Ive``, ...) never match.

Targets reproduce the reference's ``compute_target``: the ten raw annotator answers are
counted WITHOUT normalisation, so ``Two`` never scores the label ``2``. The fix is behind
``normalize_annotator_answers``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

# The official VQA contraction table, reproduced as data. Its quirks are kept on purpose:
# capitalised keys that can never match lower-cased text, "let's"/"she's" mapping to
# themselves, and the reversed entry "somebody'd" -> "somebodyd".
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't",
    "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip

# Only zero..ten are number words here; "none" also means 0.
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip

ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

# ' : $ # % & and . are deliberately absent; periods have their own rule.
PUNCTUATION: tuple[str, ...] = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
    ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip

# The reference's pattern "(?!<=\d)(\.)(?!\d)" starts with a mistyped look-behind that is
# really a look-ahead for "<=" and a digit; at a "." it can never match, so the pattern
# means exactly "a period not followed by a digit" (a period after a digit goes too).
_PERIOD = re.compile(r"\.(?!\d)")
# re.UNICODE (== 32) passed positionally as re.sub's count: at most 32 periods go.
_MAX_PERIODS_REMOVED = 32
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")

SOFT_SCORES: tuple[float, ...] = (0.0, 0.3, 0.6, 0.9, 1.0)


def process_punctuation(text: str) -> str:
    """Delete or blank out punctuation, then strip up to 32 periods.

    A mark is deleted when the original text has it next to a space or contains a
    digit,digit anywhere (so ``1,000`` -> ``1000``); otherwise it becomes a space.
    """
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    return _PERIOD.sub("", out, count=_MAX_PERIODS_REMOVED)


def process_digit_article(text: str) -> str:
    """Lower-case, map number words to digits, drop articles, expand contractions.

    Splitting on any (Unicode) whitespace and re-joining with one space also collapses
    and trims whitespace.
    """
    words: list[str] = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_answer(text: str) -> str:
    """The reference's ``preprocess_answer``: both steps, then every ``,`` removed."""
    return process_digit_article(process_punctuation(text)).replace(",", "")


def soft_score(count: int) -> float:
    """Soft target for an answer given by ``count`` of the 10 annotators.

    0, 0.3, 0.6, 0.9 for 0..3 and 1.0 from 4 on, which equals the official leave-one-out
    accuracy for 10 answers.
    """
    if count < 0:
        raise ValueError(f"an answer count cannot be negative, got {count}")
    return SOFT_SCORES[min(count, len(SOFT_SCORES) - 1)]


def answer_vocabulary(annotations: Iterable[Mapping[str, Any]], min_count: int) -> list[str]:
    """Normalised answers that are the ``multiple_choice_answer`` of >= ``min_count`` questions.

    Each distinct ``question_id`` counts once. The order is first appearance (the Python 3
    dict order of the reference), which fixes the classifier's output row of each answer.
    """
    questions_of: dict[str, set[Any]] = {}
    for annotation in annotations:
        answer = normalize_answer(annotation["multiple_choice_answer"])
        questions_of.setdefault(answer, set()).add(annotation["question_id"])
    return [answer for answer, qids in questions_of.items() if len(qids) >= min_count]


def compute_targets(
    annotations: Iterable[Mapping[str, Any]],
    answers: Iterable[str],
    *,
    normalize_annotator_answers: bool = False,
) -> list[dict[str, float]]:
    """One ``{answer: soft score}`` per annotation, for the answers in the vocabulary.

    By default the raw annotator strings are counted, as in the reference, so only raw
    answers that equal a vocabulary entry exactly score. With
    ``normalize_annotator_answers`` each annotator answer is normalised first, so e.g.
    ``Two`` counts toward ``2``. Within one dict, answers keep the order of their first
    appearance among the annotator answers, as the reference's labels do.
    """
    known = set(answers)
    clean = normalize_answer if normalize_annotator_answers else _same
    targets: list[dict[str, float]] = []
    for annotation in annotations:
        counts = Counter(clean(entry["answer"]) for entry in annotation["answers"])
        targets.append({ans: soft_score(n) for ans, n in counts.items() if ans in known})
    return targets


def reference_targets(annotations: list[dict], min_count: int) -> tuple[list[str], list[dict[str, float]]]:
    """Answer vocabulary and targets exactly as the reference computes them."""
    answers = answer_vocabulary(annotations, min_count)
    return answers, compute_targets(annotations, answers)


def _same(text: str) -> str:
    """Identity, the reference's treatment of annotator answers."""
    return text
