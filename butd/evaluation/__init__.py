"""Trained models on prepared data: the official VQA evaluation (`vqa_eval`), a checkpoint made
ready for a cache (`checkpoint`), and answers for a split or one typed question (`inference`)."""

from butd.evaluation.official import vqa_eval

__all__ = ["vqa_eval"]
