"""`prepare`: the raw files of a data config -> its processed cache (`butd.cache.load`).

The text stage (questions and annotations -> vocabulary, answers, GloVe rows, per-split
arrays), the feature conversion (`butd.preparation.convert`), and the commit that swaps a
complete cache in. New files are written under `.partial` names and renamed only when every
one is complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from butd import __version__
from butd.cache.fingerprint import fingerprint
from butd.cache.load import CacheInfo, load_cache
from butd.cache.locks import cache_lock
from butd.cache.manifest import (
    ANSWERS,
    CACHE_FORMAT_VERSION,
    GLOVE,
    MANIFEST,
    VOCAB,
    BoxCounts,
    CacheError,
    Counts,
    Manifest,
    SplitCounts,
    cache_settings,
    cached_splits,
    prepare_command,
    raw_files,
    split_file,
)
from butd.config.data import HOLDOUT, VG, DataConfig
from butd.errors import disk_full
from butd.files import PARTIAL, atomic_write_text, disk_full_message
from butd.memory import return_freed_memory
from butd.preparation.convert import (
    STATE,
    BoxSpec,
    ConvertResult,
    convert_features,
    ensure_room,
    splits_of_images,
)
from butd.preparation.formats import read_entries
from butd.preparation.linked import link_features
from butd.preparation.sources import describe_missing
from butd.preparation.visual_genome import VGSelection, select_pairs
from butd.vqa.answers import answer_vocabulary, compute_targets
from butd.vqa.csr import csr_from_rows, csr_rows
from butd.vqa.features import CLIP_TOLERANCE
from butd.vqa.official import official_tables
from butd.vqa.text import UnknownWordError, Vocabulary, load_glove

log = logging.getLogger(__name__)

_STR = h5py.string_dtype(encoding="utf-8")


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from butd.config.output import terminal

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        # in a file or a pipe, no bar: its final frame is as wide as COLUMNS (butd.config.output)
        disable=not (enabled and terminal()),
    )


def _examples(ids: list[int], n: int = 3) -> str:
    return ", ".join(str(i) for i in ids[:n]) + (", ..." if len(ids) > n else "")


def check_agreement(questions: list[dict], annotations: list[dict], qfile: Path, afile: Path) -> None:
    """Questions and annotations of one split must describe the same questions of the same images."""
    q_image = {int(q["question_id"]): int(q["image_id"]) for q in questions}
    a_image = {int(a["question_id"]): int(a["image_id"]) for a in annotations}
    no_ann = sorted(set(q_image) - set(a_image))
    no_q = sorted(set(a_image) - set(q_image))
    other = sorted(i for i in set(q_image) & set(a_image) if q_image[i] != a_image[i])
    problems = []
    if no_ann:
        problems.append(f"{len(no_ann):,} questions have no annotation (question_id {_examples(no_ann)})")
    if no_q:
        problems.append(f"{len(no_q):,} annotations have no question (question_id {_examples(no_q)})")
    if other:
        problems.append(
            f"{len(other):,} questions have another image_id in the annotations "
            f"(question_id {_examples(other)})"
        )
    if problems:
        raise CacheError(
            f"{qfile.name} ({len(q_image):,} questions) and {afile.name} ({len(a_image):,} annotations) "
            "disagree:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + f"\nBoth files must be the same split of the same VQA release (in {qfile.parent}); "
            "re-download the pair (see README, 'Real data')."
        )


@dataclass
class SplitQuestions:
    """Everything `prepare` stores per question of one split, as arrays (the JSON is not kept)."""

    question_id: np.ndarray  # int64 [Q]
    image_id: np.ndarray  # int64 [Q]
    tokens: np.ndarray  # int32 [Q, T]
    text: dict[str, np.ndarray]  # name -> str [Q] (or [Q, A] for gt_answers)
    targets: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # CSR soft scores
    accuracy: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # CSR official accuracies

    def subset(self, idx: np.ndarray) -> SplitQuestions:
        return SplitQuestions(
            question_id=self.question_id[idx],
            image_id=self.image_id[idx],
            tokens=self.tokens[idx],
            text={k: v[idx] for k, v in self.text.items()},
            targets=None if self.targets is None else csr_rows(*self.targets, idx),
            accuracy=None if self.accuracy is None else csr_rows(*self.accuracy, idx),
        )

    def write(self, h5: h5py.File, image_index: np.ndarray) -> None:
        g = h5.create_group("questions")
        g.create_dataset("question_id", data=self.question_id)
        g.create_dataset("image_id", data=self.image_id)
        g.create_dataset("image_index", data=image_index.astype(np.int32))
        g.create_dataset("tokens", data=self.tokens)
        for name, values in self.text.items():
            g.create_dataset(name, data=values.astype(object), dtype=_STR)
        h5.attrs["has_targets"] = self.targets is not None
        for group, table in (("targets", self.targets), ("vqa_acc", self.accuracy)):
            if table is not None:
                t = h5.create_group(group)
                for name, values in zip(("offsets", "labels", "scores"), table, strict=True):
                    t.create_dataset(name, data=values)


def _split_questions(
    split: str,
    qs: list[dict],
    anns: list[dict] | None,
    vocab: Vocabulary,
    answers: list[str],
    cfg: DataConfig,
) -> SplitQuestions:
    n = len(qs)
    try:
        tokens = np.array([vocab.encode(q["question"], max_len=cfg.max_question_len) for q in qs], np.int32)
    except UnknownWordError as err:
        raise CacheError(
            f"a question of split '{split}' has the word {err.word!r}, which is not in the vocabulary "
            f"built from data.vocab_splits={cfg.vocab_splits}. Set data.unknown_token=UNK to map "
            "unseen words to an unknown token, or add the split to data.vocab_splits."
        ) from None
    out = SplitQuestions(
        question_id=np.array([q["question_id"] for q in qs], np.int64),
        image_id=np.array([q["image_id"] for q in qs], np.int64),
        tokens=tokens.reshape(n, cfg.max_question_len),
        text={"question": np.array([q["question"] for q in qs], dtype=object)},
    )
    if anns is None:
        return out
    by_qid = {int(a["question_id"]): a for a in anns}
    anns = [by_qid[int(q["question_id"])] for q in qs]
    for key in ("question_type", "answer_type", "multiple_choice_answer"):
        out.text[key] = np.array([str(a.get(key, "")) for a in anns], dtype=object)
    label_of = {a: i for i, a in enumerate(answers)}
    targets = compute_targets(anns, answers, normalize_annotator_answers=cfg.normalize_annotator_answers)
    out.targets = csr_from_rows([{label_of[a]: s for a, s in t.items()} for t in targets])
    gt, accuracies = official_tables(anns, answers)
    out.text["gt_answers"] = gt
    out.accuracy = csr_from_rows(accuracies)
    return out


@dataclass
class _Text:
    vocab: Vocabulary
    answers: list[str]
    glove: np.ndarray
    glove_found: int
    splits: dict[str, SplitQuestions]
    vg: VGSelection | None = None


def _text_stage(cfg: DataConfig) -> _Text:
    """Questions and annotations -> vocabulary, answers, GloVe rows and per-split arrays."""
    questions = {
        s: read_entries(cfg.raw_path / cfg.questions[s], "questions", cfg.format)
        for s in dict.fromkeys([*cfg.vocab_splits, *cfg.prepare_splits])
        if s != HOLDOUT
    }
    needed = set(cfg.answer_splits) | set(cfg.prepare_splits) | ({"train"} if cfg.holdout_fraction else set())
    annotated = [s for s in cfg.annotations if s in needed]
    annotations = {
        s: read_entries(cfg.raw_path / cfg.annotations[s], "annotations", cfg.format) for s in annotated
    }
    for s in annotated:
        if s in questions:
            check_agreement(
                questions[s],
                annotations[s],
                cfg.raw_path / cfg.questions[s],
                cfg.raw_path / cfg.annotations[s],
            )
    words = Vocabulary()
    for s in cfg.vocab_splits:
        for q in questions[s]:
            words.add_question(q["question"])
    answers = answer_vocabulary([a for s in cfg.answer_splits for a in annotations[s]], cfg.min_answer_count)
    if not answers:
        raise CacheError(
            f"no answer occurs for at least data.min_answer_count={cfg.min_answer_count} "
            f"questions in {cfg.answer_splits}; lower it for a small data set"
        )
    if cfg.holdout_fraction > 0:
        _split_holdout(cfg, questions, annotations)
    vg = _visual_genome(cfg, questions, annotations, answers) if VG in cfg.extra_data else None
    if vg is not None:
        # training questions: their words join the vocabulary, after every other split's
        for q in vg.questions:
            words.add_question(q["question"])
    vocab = Vocabulary(words.idx2word, unknown_token=cfg.unknown_token)
    if cfg.glove:
        glove, glove_found = load_glove(cfg.raw_path / cfg.glove, vocab.idx2word, cfg.emb_dim)
    else:
        glove, glove_found = np.zeros((len(vocab), cfg.emb_dim), np.float32), 0
    splits = {
        s: _split_questions(s, questions[s], annotations.get(s), vocab, answers, cfg)
        for s in cfg.prepare_splits
    }
    if vg is not None:
        splits[VG] = _split_questions(VG, vg.questions, vg.annotations, vocab, answers, cfg)
        # one VG answer scores as `answer_count` of 10 annotators, which is also its official accuracy
        splits[VG].accuracy = splits[VG].targets
    return _Text(vocab, answers, glove, glove_found, splits, vg)


def _visual_genome(
    cfg: DataConfig, questions: dict[str, list], annotations: dict[str, list], answers: list[str]
) -> VGSelection:
    """The Visual Genome pairs on images of `data.vg.image_splits` with answers in the vocabulary."""
    image_splits = cfg.vg["image_splits"]
    types = {str(a.get("question_type", "")) for s in image_splits for a in annotations.get(s, [])}
    vg = select_pairs(
        questions_path=cfg.raw_path / cfg.vg["questions"],
        images_path=cfg.raw_path / cfg.vg["images"],
        split_images={s: {int(q["image_id"]) for q in qs} for s, qs in questions.items()},
        image_splits=image_splits,
        answers=answers,
        answer_count=int(cfg.vg["answer_count"]),
        question_types=types,
    )
    if not vg.kept:
        vg.report()
        raise CacheError(
            f"no Visual Genome pair of {cfg.raw_path / cfg.vg['questions']} is usable ({vg.read:,} read, "
            f"dropped: {vg.counts()['dropped']}): are they the files of the COCO images in data.features? "
            "Drop data.extra_data, or check data.vg and data.vg.image_splits"
        )
    return vg


def holdout_images(image_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The sorted image ids of a seeded `fraction` of the distinct `image_ids` (at least one)."""
    images = np.unique(image_ids)
    count = max(1, round(fraction * len(images)))
    return np.sort(np.random.default_rng(seed).choice(images, size=count, replace=False))


def _split_holdout(cfg: DataConfig, questions: dict[str, list], annotations: dict[str, list]) -> None:
    """Move the questions of a seeded fraction of the train images into the split `holdout`.

    Image-disjoint, so a hold-out score is not helped by images seen in training. The answer
    vocabulary and the word vocabulary still count the hold-out questions as part of train.
    """
    if "train" not in questions:
        questions["train"] = read_entries(cfg.raw_path / cfg.questions["train"], "questions", cfg.format)
    held = set(
        holdout_images(
            np.array([q["image_id"] for q in questions["train"]], np.int64),
            cfg.holdout_fraction,
            cfg.holdout_seed,
        ).tolist()
    )
    images = len({q["image_id"] for q in questions["train"]})
    if len(held) >= images:
        raise CacheError(
            f"data.holdout_fraction={cfg.holdout_fraction} holds out all {images:,} images of the train "
            "split, leaving none to train on; use a smaller fraction (VQA-CP's hold-out: 0.1)"
        )
    all_train = {"questions": questions["train"], "annotations": annotations["train"]}
    if HOLDOUT in cfg.prepare_splits:
        questions[HOLDOUT] = [q for q in all_train["questions"] if q["image_id"] in held]
        annotations[HOLDOUT] = [a for a in all_train["annotations"] if a["image_id"] in held]
    questions["train"] = [q for q in all_train["questions"] if q["image_id"] not in held]
    annotations["train"] = [a for a in all_train["annotations"] if a["image_id"] not in held]


def prepare(cfg: DataConfig, *, force: bool = False, progress: bool = True) -> CacheInfo:
    """Build the cache for `cfg` from its raw files; a current cache is left alone.

    New files are written under `.partial` names and renamed only when every one is
    complete, so an interrupted run never damages an existing cache nor leaves one that loads.
    An interrupted feature conversion keeps what it converted: the next run (forced or not)
    continues it when the settings and the feature files are the same (delete
    `convert.partial.json` to start over). The cache folder is locked meanwhile: a second
    prepare (or a training) waits for this one, then finds the cache current.
    """
    if not force:
        # a current cache needs only a reader's (shared) lock: a training reading the cache holds
        # one too, and so does every process of a DDP run when it checks the cache at its start
        with cache_lock(cfg.cache_path, exclusive=False):
            info = _current(cfg)
        if info is not None:
            return info
    with cache_lock(cfg.cache_path, exclusive=True):
        return _prepare_locked(cfg, force=force, progress=progress)


def _current(cfg: DataConfig) -> CacheInfo | None:
    """The cache when it is complete and matches `cfg` (said once in the log), else None."""
    try:
        info = load_cache(cfg)
    except CacheError:
        return None
    log.info("cache at %s is complete and matches data=%s: nothing to do", info.root, cfg.name)
    return info


def _prepare_locked(cfg: DataConfig, *, force: bool, progress: bool) -> CacheInfo:
    if not force:
        info = _current(cfg)  # another prepare may have built it while this one waited
        if info is not None:
            return info
    missing = [p for p in raw_files(cfg) if not p.exists()]
    if missing:
        raise CacheError(
            f"cannot prepare data={cfg.name}: raw files missing under {cfg.raw_path}:\n"
            + "\n".join(describe_missing(missing, cfg.raw_path))
            + f"\nDownload the official {'GQA' if cfg.format == 'gqa' else 'VQA v2'} files "
            "(see README, 'Real data')."
        )
    cfg.cache_path.mkdir(parents=True, exist_ok=True)
    try:
        _build(cfg, progress=progress)
    except BaseException as err:
        # the earlier cache stays as it was; of the new files only a resumable conversion stays
        keep = {STATE} if (cfg.cache_path / STATE).is_file() else set()
        if keep:
            keep |= {split_file(cfg.cache_path, s).name + PARTIAL for s in cached_splits(cfg)}
        for leftover in [*cfg.cache_path.glob("*" + PARTIAL), cfg.cache_path / STATE]:
            if leftover.name not in keep:
                leftover.unlink(missing_ok=True)
        full = disk_full(err)
        if full:
            raise _disk_full_error(cfg, full) from err
        raise
    return load_cache(cfg)


def _disk_full_error(cfg: DataConfig, words: str) -> CacheError:
    """What a full disk left of the cache folder, and how to go on."""
    root = cfg.cache_path
    kept = []
    if (root / MANIFEST).is_file():
        kept.append("the earlier cache, unchanged")
    if (root / STATE).is_file():
        kept.append("the feature conversion so far (the next prepare continues it)")
    return CacheError(
        disk_full_message(
            words,
            writing=f"preparing the cache in {root}",
            folder=root,
            kept=f"Kept: {'; '.join(kept) or 'nothing'}; the new cache's other partial files were deleted",
            larger="data.cache_dir",
            then=f"then run `{prepare_command(cfg)} force=true` again",
        )
    )


def _build(cfg: DataConfig, *, progress: bool) -> None:
    started = time.time()
    root = cfg.cache_path
    # taken before reading: a file edited during the build then differs from its fingerprint
    sources = {str(p.relative_to(cfg.raw_path)): fingerprint(p) for p in raw_files(cfg)}
    gqa_tables = None
    if cfg.format == "gqa":  # GQA's own layout (butd.preparation.gqa)
        from butd.preparation import gqa

        vocab, answers, glove, found, fields, gqa_tables = gqa.text_stage(cfg)
        text = _Text(vocab, answers, glove, found, {s: SplitQuestions(**f) for s, f in fields.items()})
    else:
        text = _text_stage(cfg)
    return_freed_memory()  # the parsed JSON: not to be held through the conversion
    wanted = {s: np.unique(text.splits[s].image_id) for s in cached_splits(cfg)}
    feature_paths = [cfg.raw_path / f for f in cfg.features]
    if gqa_tables is not None:
        result = gqa.link(cfg, root, wanted)
        feature_paths = [cfg.raw_path / cfg.gqa["objects_info"]]
    elif cfg.features_from is not None:
        result = _link(cfg, root, wanted)
        feature_paths = [Path(cfg.features_from)]
    else:
        result = _convert(cfg, root, wanted, feature_paths, progress)
    writers = result.writers
    try:
        estimate = sum(q.tokens.nbytes * 8 for q in text.splits.values()) + text.glove.nbytes
        ensure_room(root, estimate, "the questions, answers and GloVe rows")
        split_counts: dict[str, SplitCounts] = {}
        for s in cached_splits(cfg):
            w = writers[s]
            if not w.num_images:
                raise CacheError(
                    f"no image of split '{s}' has features in {[str(p) for p in feature_paths]}; "
                    "do data.features and data.questions belong together?"
                )
            w.finish()
            for group in ("questions", "targets", "vqa_acc"):  # from an earlier, failed attempt
                if group in w.h5:
                    del w.h5[group]
            split_counts[s] = _write_split_questions(w, text.splits[s], s)
            if gqa_tables is not None:
                gqa.write_tables(w.h5, gqa_tables[s])
            w.h5.attrs["split"] = s
            w.h5.attrs["format_version"] = CACHE_FORMAT_VERSION
    finally:
        for w in writers.values():
            w.close()

    if text.vg is not None:
        text.vg.dropped["image_without_features"] = split_counts[VG].dropped_questions
        text.vg.report()
    manifest = Manifest(
        format_version=CACHE_FORMAT_VERSION,
        name=cfg.name,
        settings=cache_settings(cfg),
        sources=sources,
        counts=Counts(
            ntoken=len(text.vocab),
            num_answers=len(text.answers),
            feature_dim=result.feature_dim,
            glove_words_found=text.glove_found,
            splits=split_counts,
            skipped_rows=result.skipped_rows,
            skipped_examples=result.skipped_examples,
            clipped_boxes=result.clipped_boxes,
            clipped_examples=result.clipped_examples,
            visual_genome=None if text.vg is None else text.vg.counts(),
        ),
        files={},  # each split file's size, once it is complete (`_commit`)
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        seconds=round(time.time() - started, 1),
        conversion={
            "seconds": round(result.seconds, 1),
            "workers": result.workers,
            "chunks": result.chunks,
            "resumed_from_chunk": result.resumed_from_chunk,
        },
        butd_version=__version__,
        features_from=result.linked or None,
    )
    if result.skipped_rows:
        log.warning("%d bad feature rows were skipped (data.skip_bad_rows=true)", result.skipped_rows)
    if result.clipped_boxes:
        log.warning(
            "%d boxes reached more than %g pixel outside their image and were clipped to it, e.g. %s",
            result.clipped_boxes,
            CLIP_TOLERANCE,
            result.clipped_examples[0],
        )
    _commit(root, list(writers), text, manifest)


def _convert(
    cfg: DataConfig, root: Path, wanted: dict[str, np.ndarray], feature_paths: list[Path], progress: bool
) -> ConvertResult:
    """The feature TSVs -> the split files' `images/` groups (`butd.preparation.convert`)."""
    with _progress(progress) as bar:
        task = bar.add_task(f"features -> {root}", total=None, note="")
        return convert_features(
            feature_paths,
            root,
            splits_of_images(wanted),
            boxes=BoxSpec.of(cfg),
            settings=cache_settings(cfg),
            workers=cfg.prepare_workers,
            chunk_bytes=max(1, int(cfg.prepare_chunk_mb * 2**20)),
            skip_bad_rows=cfg.skip_bad_rows,
            feature_dim=cfg.feature_dim,
            progress=lambda done, total, note: bar.update(task, completed=done, total=total, note=note),
        )


def _link(cfg: DataConfig, root: Path, wanted: dict[str, np.ndarray]) -> ConvertResult:
    """The split files' `images/` groups as views of another cache's (`butd.preparation.linked`)."""
    source_root = Path(cfg.features_from)
    started = time.time()
    with cache_lock(source_root, exclusive=False):  # not rebuilt while it is being linked
        writers, source = link_features(source_root, root, wanted, cache_settings(cfg))
    log.info(
        "features: %d images linked from the cache at %s (nothing converted)",
        sum(w.num_images for w in writers.values()),
        source_root,
    )
    return ConvertResult.viewed(
        feature_dim=source.manifest.counts.feature_dim,
        writers=writers,
        seconds=time.time() - started,
        linked=source.record(),
    )


def _write_split_questions(w, questions: SplitQuestions, split: str) -> SplitCounts:
    """The questions whose image has features, pointed at their image rows; the rest reported."""
    ids = np.fromiter(w.row_of, np.int64, count=len(w.row_of))
    rows = np.fromiter(w.row_of.values(), np.int64, count=len(w.row_of))
    order = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids[order], questions.image_id), 0, len(ids) - 1)
    found = ids[order][pos] == questions.image_id
    kept = questions.subset(np.flatnonzero(found))
    kept.write(w.h5, rows[order][pos[found]])
    missing_images = np.unique(questions.image_id[~found])
    if len(missing_images):
        log.warning(
            "split %s: %d questions dropped, their %d images have no features (image_id %s)",
            split,
            int((~found).sum()),
            len(missing_images),
            _examples(missing_images.tolist()),
        )
    counts = w.h5["images/counts"][:]
    return SplitCounts(
        questions=int(found.sum()),
        dropped_questions=int((~found).sum()),
        images=w.num_images,
        images_without_features=len(missing_images),
        images_without_features_examples=missing_images[:5].tolist(),
        boxes=BoxCounts(min=int(counts.min()), mean=round(float(counts.mean()), 2), max=int(counts.max())),
    )


def _commit(root: Path, splits: list[str], text: _Text, manifest: Manifest) -> None:
    """Swap the new cache in: drop the old manifest, rename files, write the manifest last."""
    partial = {
        root / VOCAB: json.dumps(text.vocab.to_json(), ensure_ascii=False),
        root / ANSWERS: json.dumps(text.answers, ensure_ascii=False),
    }
    for final, content in partial.items():
        Path(str(final) + PARTIAL).write_text(content, encoding="utf-8")
    with open(str(root / GLOVE) + PARTIAL, "wb") as fh:
        np.save(fh, text.glove)
    for s in splits:
        path = Path(str(split_file(root, s)) + PARTIAL)
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
        manifest.files[split_file(root, s).name] = path.stat().st_size
    (root / MANIFEST).unlink(missing_ok=True)
    for final in [root / VOCAB, root / ANSWERS, root / GLOVE] + [split_file(root, s) for s in splits]:
        os.replace(str(final) + PARTIAL, final)
    (root / STATE).unlink(missing_ok=True)
    atomic_write_text(root / MANIFEST, json.dumps(manifest.to_json(), indent=2))


def ensure_raw(cfg: DataConfig, *, progress: bool = True) -> None:
    """Generate the raw files when the config describes a synthetic set and they are stale."""
    if cfg.synthetic is None:
        return
    from butd.preparation.synthetic import SyntheticSpec, generate, planned_files

    spec_file = cfg.raw_path / "synthetic_spec.json"
    wanted = json.dumps({**cfg.synthetic, "changing_priors": cfg.changing_priors}, sort_keys=True)
    if cfg.changing_priors is None:
        wanted = json.dumps(cfg.synthetic, sort_keys=True)  # as before the re-split existed
    if not spec_file.is_file() or spec_file.read_text() != wanted:
        from butd.preparation.changing_priors import VQACP2_FILES, write_changing_priors
        from butd.preparation.raw_files import RawFiles
        from butd.preparation.synthetic_gqa import generate_gqa, planned_gqa_files

        spec = SyntheticSpec(**cfg.synthetic)
        # a folder generated before the ledger of written files (its spec file says so) is the generator's
        files = RawFiles(
            cfg.raw_path, command="the synthetic generator", trust_unrecorded=spec_file.is_file()
        )
        if cfg.format == "gqa":  # the same scenes in GQA's formats
            generate, planned_files = generate_gqa, planned_gqa_files
        files.check([spec_file.name, *planned_files(spec), *(VQACP2_FILES if cfg.changing_priors else [])])
        generate(cfg.raw_path, spec, progress=progress, files=files)
        if cfg.changing_priors is not None:
            write_changing_priors(cfg.raw_path, cfg.raw_path, files=files, **cfg.changing_priors)
        files.write_text(spec_file.name, wanted)


def ensure_prepared(cfg: DataConfig, *, progress: bool = True) -> CacheInfo:
    """Raw files (if generated) and then the cache; both steps skip what is already current."""
    ensure_raw(cfg, progress=progress)
    return prepare(cfg, progress=progress)


def prepared_cache(cfg: DataConfig) -> CacheInfo:
    """The cache an entry point (train, evaluate, predict, visualize) reads, before it builds any
    reader: generated and prepared first where `data.auto_prepare` allows (the synthetic sets),
    else only opened, so that a missing cache is the error naming `python -m butd.prepare`.

    Under DDP, `butd.train` calls this in the launching process, before the other ranks start; they
    find the cache current (a shared lock), and a second prepare waits for the first (`cache_lock`)."""
    if cfg.auto_prepare:
        return ensure_prepared(cfg)
    if not (cfg.cache_path / MANIFEST).is_file():
        raise missing_cache_error(cfg)
    return load_cache(cfg)


def missing_cache_error(cfg: DataConfig) -> CacheError:
    """No cache for `cfg`: the prepare command, and how to get the raw files still missing."""
    missing_raw = [p for p in raw_files(cfg) if not p.exists()]
    lines = [f"no prepared cache for data={cfg.name}: {cfg.cache_path / MANIFEST} does not exist."]
    if missing_raw:
        lines.append("The raw files are missing too:")
        lines += describe_missing(missing_raw, cfg.raw_path)
        official = "GQA" if cfg.format == "gqa" else "VQA v2"
        lines.append(f"Put the official {official} files there (see README, 'Real data'), then run:")
    else:
        lines.append("The raw files are present; build the cache with:")
    lines.append(f"  {prepare_command(cfg)}")
    return CacheError("\n".join(lines))
