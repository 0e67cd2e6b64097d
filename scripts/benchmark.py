"""Training throughput of butd against a re-creation of the reference training loop.

Both run in this process on random data of the real VQA v2 shapes (batch 512, 36 boxes of
2048 features, width 1024, 3,129 answers, 19,901 words; an epoch is 443,757 questions over
82,783 images). Measured after warm-up:

- reference pipeline: a per-question Dataset (features float32 in RAM, a dense 3,129-answer
  target built per question), the default collate, one loader worker, `.to(device)`;
- reference step: that pipeline feeding the model in float32, eager, weight norm recomputed
  on every call, BCE loss, clip 0.25, Adamax;
- butd pipeline: `TensorSplit` batches (float16 features on the GPU, or in RAM on a CPU),
  gathered by index, sparse targets made dense where the model runs;
- butd step: that pipeline, bf16 autocast on a GPU (fp32 on a CPU), optionally compiled,
  foreach Adamax, no host synchronisation inside the step;
- the full loop: one short epoch of what `python -m butd.train` runs (Lightning Trainer,
  VQAModule with its metrics and logging, default callbacks and loggers, validation with the
  official accuracy, the epoch's atomic checkpoints), timed step by step, with validation and
  checkpoint seconds scaled to a VQA v2 epoch (`loop_*`, `val_s_per_epoch`,
  `checkpoint_s_per_epoch` in the JSON line).

Reference and butd are timed in alternating rounds, each round with a fresh stream (no
loader worker runs while the other is timed), so load changes on the machine fall on both
alike. Peak memory is the whole process's, both data copies included.

It prints a table and, as its last line, one JSON object. It reports; it never asserts.

    python scripts/benchmark.py --device cuda            # full shapes on a GPU
    python scripts/benchmark.py --device cpu --quick     # under 2 minutes on a CPU
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from butd.data.batch import QuestionTables, VQABatch
from butd.data.sampling import EpochBatchSampler
from butd.data.splits import SplitTables
from butd.data.stores import TensorBatchLoader, TensorSplit
from butd.models import ModelConfig, build_model
from butd.training.metrics import vqa_bce_loss

EPOCH_QUESTIONS = 443_757
EPOCH_IMAGES = 82_783
VAL_QUESTIONS = 214_354


@dataclass
class Shapes:
    batch_size: int = 512
    num_boxes: int = 36
    feature_dim: int = 2048
    num_hid: int = 1024
    num_answers: int = 3129
    ntoken: int = 19_901
    seq_len: int = 14
    images: int = EPOCH_IMAGES
    questions: int = EPOCH_QUESTIONS


@dataclass
class RandomSplit:
    """Random arrays in the layout of a prepared split."""

    features: np.ndarray  # float16 [N, K, D]
    spatial: np.ndarray  # float32 [N, K, 6]
    image_index: np.ndarray  # [Q]
    tokens: np.ndarray  # [Q, T]
    offsets: np.ndarray  # CSR targets
    labels: np.ndarray
    scores: np.ndarray
    official: tuple[np.ndarray, np.ndarray, np.ndarray]  # acc labels [Q, 10], values [Q, 10], types [Q]


def random_split(shapes: Shapes, seed: int = 0) -> RandomSplit:
    rng = np.random.default_rng(seed)
    n, q = shapes.images, shapes.questions
    features = np.empty((n, shapes.num_boxes, shapes.feature_dim), np.float16)
    for start in range(0, n, 1024):  # in chunks: a float32 copy of everything would not fit
        chunk = rng.random((min(1024, n - start), shapes.num_boxes, shapes.feature_dim), np.float32)
        features[start : start + len(chunk)] = chunk * 2
    lengths = rng.integers(0, 11, q)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return RandomSplit(
        features=features,
        spatial=rng.random((n, shapes.num_boxes, 6), np.float32),
        image_index=rng.integers(0, n, q),
        tokens=rng.integers(0, shapes.ntoken + 1, (q, shapes.seq_len)),
        offsets=offsets,
        labels=rng.integers(0, shapes.num_answers, offsets[-1]).astype(np.int32),
        scores=rng.choice(np.array([0.3, 0.6, 0.9, 1.0], np.float32), offsets[-1]),
        official=(
            rng.integers(-1, shapes.num_answers, (q, 10)).astype(np.int32),
            rng.choice(np.array([0.0, 0.3, 0.6, 0.9, 1.0], np.float32), (q, 10)),
            rng.integers(0, 3, q),
        ),
    )


class PerQuestionDataset(Dataset):
    """The reference's input path: one question per item, a dense target built per item."""

    def __init__(self, data: RandomSplit, num_answers: int) -> None:
        self.features = data.features.astype(np.float32)  # the reference keeps float32 in RAM
        self.spatial = data.spatial
        self.image_index = data.image_index
        self.tokens = [torch.from_numpy(t) for t in data.tokens]
        self.labels = [
            torch.from_numpy(data.labels[a:b].astype(np.int64))
            for a, b in zip(data.offsets[:-1], data.offsets[1:], strict=True)
        ]
        self.scores = [
            torch.from_numpy(data.scores[a:b])
            for a, b in zip(data.offsets[:-1], data.offsets[1:], strict=True)
        ]
        self.num_answers = num_answers

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int):
        image = self.image_index[i]
        target = torch.zeros(self.num_answers)
        if len(self.labels[i]):
            target.scatter_(0, self.labels[i], self.scores[i])
        return (
            torch.from_numpy(self.features[image]),
            torch.from_numpy(self.spatial[image]),
            self.tokens[i],
            target,
        )


def reference_stream(dataset: PerQuestionDataset, shapes: Shapes, device: torch.device) -> Iterator[VQABatch]:
    """The reference's loader: shuffled, default collate, one worker; batches moved to `device`."""
    loader = DataLoader(dataset, batch_size=shapes.batch_size, shuffle=True, num_workers=1)
    while True:
        for v, b, q, target in loader:
            ids = torch.arange(len(q))  # the reference's items carry none; nothing reads them
            yield VQABatch(v=v, b=b, q=q, question_id=ids, target=target).to(device)


def butd_store(data: RandomSplit, shapes: Shapes, device: torch.device) -> TensorSplit:
    n, k = data.features.shape[:2]
    q, width = data.official[0].shape
    tables = SplitTables(
        paths=[],
        question_id=np.arange(shapes.questions),
        image_index=data.image_index,
        tokens=data.tokens,
        image_file=np.zeros(n, np.int64),
        box_start=np.arange(n, dtype=np.int64) * k,
        box_count=np.full(n, k, np.int64),
        feature_dim=data.features.shape[2],
        targets=(data.offsets, data.labels, data.scores),
        accuracy=(np.arange(q + 1) * width, data.official[0].ravel(), data.official[1].ravel()),
        answer_type=data.official[2],
    )
    return TensorSplit(
        features=data.features.reshape(n * k, -1),
        spatial=data.spatial.reshape(n * k, -1),
        box_offsets=np.arange(n + 1, dtype=np.int64) * k,
        image_index=data.image_index,
        questions=QuestionTables(tables, num_answers=shapes.num_answers, device=device),
    )


def butd_stream(store: TensorSplit, shapes: Shapes, device: torch.device) -> Iterator[VQABatch]:
    sampler = EpochBatchSampler(len(store), batch_size=shapes.batch_size, shuffle=True)
    loader = TensorBatchLoader(store, sampler)
    while True:
        sampler.set_epoch(sampler.epoch + 1)
        for batch in loader:
            yield batch.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


Stream = Callable[[], Iterator[VQABatch]]
Consume = Callable[[VQABatch], None]


def compare(
    candidates: dict[str, tuple[Stream, Consume]],
    *,
    warmup: int,
    steps: int,
    batch: int,
    device: torch.device,
    rounds: int = 2,
) -> dict[str, float]:
    """Questions per second of each candidate, measured in alternating rounds.

    A candidate is a factory of batch streams and what to do with each batch. Each round
    opens a fresh stream (so no loader worker keeps running while another candidate is
    timed), warms it up, times `steps / rounds` batches and closes it. Alternating rounds
    make a change in the machine's load fall on every candidate alike.
    """
    per_round = max(1, steps // rounds)
    elapsed = dict.fromkeys(candidates, 0.0)
    for _ in range(rounds):
        for name, (open_stream, consume) in candidates.items():
            stream = open_stream()
            for _ in range(warmup):
                consume(next(stream))
            sync(device)
            start = time.perf_counter()
            for _ in range(per_round):
                consume(next(stream))
            sync(device)
            elapsed[name] += time.perf_counter() - start
            stream.close()
    return {name: rounds * per_round * batch / seconds for name, seconds in elapsed.items()}


def make_step(
    model: torch.nn.Module, *, autocast: bool, device: torch.device, foreach: bool | None
) -> Consume:
    optim = torch.optim.Adamax(model.parameters(), lr=2e-3, foreach=foreach)

    def step(batch: VQABatch) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(batch.v, batch.q, batch.b, batch.v_mask)
            loss = vqa_bce_loss(logits.float(), batch.target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optim.step()
        optim.zero_grad(set_to_none=True)

    return step


def make_eval(model: torch.nn.Module, *, autocast: bool, device: torch.device) -> Consume:
    @torch.no_grad()
    def run(batch: VQABatch) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            model(batch.v, batch.q, batch.b, batch.v_mask).argmax(1)

    return run


@dataclass
class LoopFigures:
    """What one short `butd.train`-style fit measured (seconds; steady state unless said)."""

    step_s: float  # a training step in the full loop (Lightning, metrics, logging, callbacks)
    val_batch_s: float  # a validation batch in the full loop (official accuracy included)
    checkpoint_s: float  # the end-of-epoch checkpoint writes of the default callbacks, together
    checkpoints: int  # how many files those writes left
    first_step_s: float  # the first training step (compilation, with --compile)
    first_val_batch_s: float  # the first validation batch (the evaluation graph's compilation)


class LoopTimer:
    """Times a fit from Lightning's hooks, waiting for the device at each mark.

    Marks: the steady training steps (after `warmup`), the validation batches after the first,
    and, from the end of the training epoch's other hooks to the end of training, the checkpoint
    callbacks' writes (Lightning runs checkpoint callbacks after all others).
    """

    def __init__(self, *, warmup: int, steps: int, device: torch.device) -> None:
        import pytorch_lightning as pl

        self.warmup, self.steps, self.device = warmup, steps, device
        self.marks: dict[str, float] = {}
        timer = self

        class Hooks(pl.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if batch_idx in (0, timer.warmup):
                    timer.mark(f"train_start_{batch_idx}")

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if batch_idx in (0, timer.warmup + timer.steps - 1):
                    timer.mark(f"train_end_{batch_idx}")

            def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
                if batch_idx == 0:
                    timer.mark("val_start")

            def on_validation_batch_end(
                self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
            ):
                timer.mark("val_first_end" if batch_idx == 0 else "val_end")
                timer.val_batches = batch_idx + 1

            def on_train_epoch_end(self, trainer, pl_module):
                timer.mark("checkpoint_start")

            def on_train_end(self, trainer, pl_module):
                timer.mark("checkpoint_end")

        self.callback = Hooks()

    def mark(self, name: str) -> None:
        sync(self.device)
        self.marks[name] = time.perf_counter()


def run_loop(
    store: TensorSplit,
    shapes: Shapes,
    device: torch.device,
    *,
    bf16: bool,
    compile: bool,
    warmup: int,
    steps: int,
    val_batches: int,
) -> LoopFigures:
    """One epoch of `warmup + steps` training batches, `val_batches` of validation and the epoch's
    checkpoints, through butd's own objects as `python -m butd.train` builds them: the composed
    `train` config's trainer, default callbacks and loggers (CSV and offline W&B), checkpoint IO
    and optimizer, a `VQAModule`, and the tensor store's loaders, on the random split."""
    import tempfile

    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from butd.config import compose
    from butd.config.output import quiet_libraries
    from butd.config.training import SlurmConfig
    from butd.training.module import VQAModule
    from butd.training.run import finish_wandb, instantiate_group
    from butd.training.slurm import trainer_setup

    quiet_libraries()  # as butd.train: no library banners between the figures
    with tempfile.TemporaryDirectory(prefix="butd-benchmark-") as tmp:
        cfg = compose(
            "train",
            [
                f"paths.output_dir={tmp}",
                f"paths.log_dir={tmp}",
                f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
                f"trainer.precision={'bf16-mixed' if bf16 else '32-true'}",
                "trainer.max_epochs=1",
                f"++trainer.limit_train_batches={warmup + steps}",
                f"++trainer.limit_val_batches={val_batches}",
                "++trainer.num_sanity_val_steps=0",
                "++trainer.enable_model_summary=false",
                f"compile={str(compile).lower()}",
            ],
        )
        pl.seed_everything(1111, verbose=False)
        module = VQAModule(
            model=ModelConfig(num_hid=shapes.num_hid),
            ntoken=shapes.ntoken,
            v_dim=shapes.feature_dim,
            num_answers=shapes.num_answers,
            optimizer=OmegaConf.to_container(cfg.optim.optimizer, resolve=True),
            compile=compile,
        )
        timer = LoopTimer(warmup=warmup, steps=steps, device=device)
        trainer_kwargs, _ = trainer_setup(SlurmConfig(), log_dir=tmp, task_name=cfg.task_name)
        trainer = instantiate(
            cfg.trainer,
            callbacks=[*instantiate_group(cfg.callbacks), timer.callback],
            logger=instantiate_group(cfg.logger) or False,
            **trainer_kwargs,
        )
        train = TensorBatchLoader(
            store, EpochBatchSampler(len(store), batch_size=shapes.batch_size, shuffle=True)
        )
        val = TensorBatchLoader(
            store, EpochBatchSampler(len(store), batch_size=shapes.batch_size, shuffle=False)
        )
        try:
            trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        finally:
            finish_wandb(trainer)
        m = timer.marks
        checkpoints = len(list(Path(tmp).rglob("*.ckpt")))
    return LoopFigures(
        step_s=(m[f"train_end_{warmup + steps - 1}"] - m[f"train_start_{warmup}"]) / steps,
        val_batch_s=(m["val_end"] - m["val_first_end"]) / (timer.val_batches - 1),
        checkpoint_s=m["checkpoint_end"] - m["checkpoint_start"],
        checkpoints=checkpoints,
        first_step_s=m["train_end_0"] - m["train_start_0"],
        first_val_batch_s=m["val_first_end"] - m["val_start"],
    )


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument("--quick", action="store_true", help="small run for a CPU: batch 128, few steps")
    p.add_argument("--precision", choices=["auto", "32", "bf16-mixed"], default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile butd's model")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    for field, default in asdict(Shapes()).items():
        p.add_argument(f"--{field.replace('_', '-')}", type=int, default=None, help=f"default {default}")
    return p.parse_args(argv)


def settings(args: argparse.Namespace) -> tuple[Shapes, int, int]:
    shapes = Shapes()
    warmup, steps = 3, 20
    if args.device == "cpu":
        # A float32 copy of 82,783 images (24 GB) is more than a development machine holds;
        # the per-question cost does not depend on how many images there are.
        shapes.images, shapes.questions, warmup, steps = 2000, 50_000, 2, 8
    if args.quick:
        shapes.batch_size, shapes.images, shapes.questions, warmup, steps = 128, 1000, 20_000, 1, 4
    for field in asdict(shapes):
        value = getattr(args, field)
        if value is not None:
            setattr(shapes, field, value)
    return shapes, args.warmup if args.warmup is not None else warmup, args.steps or steps


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda, but torch sees no CUDA GPU here; use --device cpu")
    device = torch.device(args.device)
    shapes, warmup, steps = settings(args)
    bf16 = args.precision == "bf16-mixed" or (args.precision == "auto" and device.type == "cuda")
    torch.manual_seed(1111)
    print(f"shapes: {shapes}; warmup {warmup}, {steps} timed steps; device {device}", flush=True)
    data = random_split(shapes)

    def model() -> torch.nn.Module:
        torch.manual_seed(1111)
        cfg = ModelConfig(num_hid=shapes.num_hid)
        net = build_model(cfg, ntoken=shapes.ntoken, v_dim=shapes.feature_dim, num_answers=shapes.num_answers)
        return net.to(device).train()

    timing = dict(warmup=warmup, steps=steps, batch=shapes.batch_size, device=device)
    try:
        dataset = PerQuestionDataset(data, shapes.num_answers)
        store = butd_store(data, shapes, device)

        def theirs() -> Iterator[VQABatch]:
            return reference_stream(dataset, shapes, device)

        def ours() -> Iterator[VQABatch]:
            return butd_stream(store, shapes, device)

        def nothing(batch: VQABatch) -> None:
            pass

        # input paths are cheap: time ten times as many batches
        pipes = compare(
            {"reference": (theirs, nothing), "butd": (ours, nothing)}, **{**timing, "steps": 10 * steps}
        )
        net = model()
        if args.compile:
            net.compile()
        steps_per_s = compare(
            {
                # the reference: torch's Adamax defaults, float32, eager
                "reference": (theirs, make_step(model(), autocast=False, device=device, foreach=None)),
                "butd": (ours, make_step(net, autocast=bf16, device=device, foreach=True)),
            },
            **timing,
        )
        # the full loop, then the bare step once more: the loop sits between the bare step's rounds
        loop = run_loop(
            store,
            shapes,
            device,
            bf16=bf16,
            compile=args.compile,
            warmup=warmup,
            steps=steps,
            val_batches=steps,
        )
        bare = make_step(net, autocast=bf16, device=device, foreach=True)
        again = compare({"butd": (ours, bare)}, **timing, rounds=1)["butd"]
        net.eval()
        val = compare({"butd": (ours, make_eval(net, autocast=bf16, device=device))}, **timing)["butd"]
        ref_pipe, pipe = pipes["reference"], pipes["butd"]
        ref_step, step = steps_per_s["reference"], (steps_per_s["butd"] + again) / 2
    except torch.cuda.OutOfMemoryError as err:
        feats = shapes.images * shapes.num_boxes * shapes.feature_dim * 2 / 2**30
        sys.exit(
            f"error: out of GPU memory with batch {shapes.batch_size}, {shapes.images:,} images "
            f"({feats:.1f} GiB of float16 features) and width {shapes.num_hid}: lower --batch-size or "
            f"--images ({err})"
        )
    epoch_s = EPOCH_QUESTIONS / step
    loop_rate = shapes.batch_size / loop.step_s
    val_s = loop.val_batch_s * -(-VAL_QUESTIONS // shapes.batch_size)
    loop_epoch_s = EPOCH_QUESTIONS / loop_rate + val_s + loop.checkpoint_s
    # compilation: what the first training step and validation batch took beyond a steady one
    compile_s = loop.first_step_s - loop.step_s + loop.first_val_batch_s - loop.val_batch_s
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": "bf16-mixed" if bf16 else "32",
        "compile": args.compile,
        "batch_size": shapes.batch_size,
        "questions_per_s": round(step, 1),
        "reference_questions_per_s": round(ref_step, 1),
        "speedup": round(step / ref_step, 2),
        "pipeline_questions_per_s": round(pipe, 1),
        "reference_pipeline_questions_per_s": round(ref_pipe, 1),
        "pipeline_speedup": round(pipe / ref_pipe, 2),
        "val_questions_per_s": round(val, 1),
        "epoch_s_estimate": round(epoch_s, 2),
        "reference_epoch_s_estimate": round(EPOCH_QUESTIONS / ref_step, 2),
        "run_30_epochs_s_estimate": round(30 * (epoch_s + VAL_QUESTIONS / val), 1),
        "loop_questions_per_s": round(loop_rate, 1),
        "loop_overhead": round(step / loop_rate, 3),
        "val_s_per_epoch": round(val_s, 2),
        "checkpoint_s_per_epoch": round(loop.checkpoint_s, 2),
        "checkpoint_files_per_epoch": loop.checkpoints,
        "loop_epoch_s_estimate": round(loop_epoch_s, 2),
        "loop_compile_s": round(compile_s, 2) if args.compile else None,
        "peak_memory_gb": round(peak_memory_gb(device), 2),
    }
    rows = [
        ("input path only", ref_pipe, pipe),
        ("training step + input", ref_step, step),
    ]
    print(f"\n{'questions/s':<24}{'reference':>12}{'butd':>12}{'ratio':>8}")
    for name, ref, ours in rows:
        print(f"{name:<24}{ref:>12,.0f}{ours:>12,.0f}{ours / ref:>8.2f}")
    print(f"\n{'ms per step':<24}{'ms':>12}{'questions/s':>12}{'vs bare':>8}")
    for name, rate in (
        ("bare step", step),
        ("full loop (Lightning)", loop_rate),
        ("reference loop", ref_step),
    ):
        print(f"{name:<24}{1000 * shapes.batch_size / rate:>12,.1f}{rate:>12,.0f}{step / rate:>8.2f}")
    print(
        f"per epoch: validation {val_s:,.1f} s, checkpoints {loop.checkpoint_s:,.1f} s "
        f"({loop.checkpoints} files)" + (f", compilation {compile_s:,.1f} s once" if args.compile else "")
    )
    print(
        f"epoch estimate: bare step {epoch_s:,.1f} s, full loop {loop_epoch_s:,.1f} s with validation and "
        f"checkpoints, reference {EPOCH_QUESTIONS / ref_step:,.1f} s"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
