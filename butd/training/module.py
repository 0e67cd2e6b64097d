"""The LightningModule: the reference's training recipe around a model built from its config."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from butd.config.debias import DebiasConfig
from butd.config.model import OUTPUTS
from butd.data.batch import VQABatch
from butd.models import ModelConfig, build_model, count_parameters
from butd.training.debias import build_debias, method_scores, visual_mean
from butd.training.gqa import GQAEpoch
from butd.training.metrics import (
    UpperBound,
    VQAScore,
    WeightedMean,
    diagnostic_name,
    typed_mean_metrics,
    vqa_accuracy_metrics,
    vqa_accuracy_name,
)

#: diagnostics of every method, from the question-type prior: the share of questions whose answer
#: is the question type's most frequent training answer, and whose answer the type ever has
PRIOR_DIAGNOSTICS = ("prior_top", "prior_support")
#: the diagnostics that are shares of questions, logged in percent (the others are plain means)
PERCENT_DIAGNOSTICS = frozenset({"prior_top", "prior_support", "tie_changed"})


def _diagnostic_scale(name: str) -> float:
    return 100.0 if name in PERCENT_DIAGNOSTICS else 1.0


class VQAModule(pl.LightningModule):
    """Trains and validates a BUTD-family model with the reference loss and scores.

    Everything needed to rebuild the model is in the hyper-parameters, so
    `VQAModule.load_from_checkpoint(path)` works without the config; the vocabulary,
    answer list and cache manifest ride along in `checkpoint["butd"]` (see `metadata`).
    """

    def __init__(
        self,
        *,
        model: ModelConfig | dict[str, Any],
        ntoken: int,
        v_dim: int,
        num_answers: int,
        optimizer: dict[str, Any],
        compile: bool = False,
        debias: DebiasConfig | dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # a validated config is kept as it is; a mapping (a checkpoint's hparams) is validated here
        self.model_cfg = model if isinstance(model, ModelConfig) else ModelConfig.from_dict(model)
        # checkpoints hold plain values only
        self.debias_cfg = debias if isinstance(debias, DebiasConfig) else DebiasConfig.from_dict(debias)
        self.save_hyperparameters(
            {
                "model": self.model_cfg.to_dict(),
                "ntoken": ntoken,
                "v_dim": v_dim,
                "num_answers": num_answers,
                "optimizer": optimizer,
                "compile": compile,
                "debias": self.debias_cfg.to_dict(),
            }
        )
        self.model = build_model(self.model_cfg, ntoken=ntoken, v_dim=v_dim, num_answers=num_answers)
        self.num_parameters = count_parameters(self.model)
        #: the training loss: the reference's with debias=none (butd.training.debias)
        self.debias = build_debias(
            self.debias_cfg,
            num_hid=self.model_cfg.num_hid,
            num_answers=num_answers,
            v_dim=v_dim,
            output=self.model_cfg.output,
        )
        #: the loss of `model.output`: validation's loss for every method
        self.output_loss = OUTPUTS.implementation(self.model_cfg.output)
        #: question-type prior [types + 1, num_answers] (last row: a type unseen in training); `set_prior`
        self.register_buffer("qtype_prior", None, persistent=False)
        #: each row's most frequent answer [types + 1] (-1 for the unseen type's empty row); `set_prior`
        self.register_buffer("qtype_top", None, persistent=False)
        #: the diagnostics per name, each a mean per answer type (`train/diag/{name}`, `val/diag/{name}`)
        names = (*self.debias.diagnostic_names, *PRIOR_DIAGNOSTICS)
        self.train_diag, self.val_diag = (
            torch.nn.ModuleDict({n: typed_mean_metrics(scale=_diagnostic_scale(n)) for n in names})
            for _ in range(2)
        )
        self.test_score = VQAScore()
        self.test_vqa_acc = vqa_accuracy_metrics()
        self.train_loss = WeightedMean()
        self.train_score = VQAScore()
        self.val_loss = WeightedMean()
        self.val_score = VQAScore()
        self.val_upper_bound = UpperBound()
        #: the official VQA accuracy, overall and per answer type
        self.val_vqa_acc = vqa_accuracy_metrics()
        #: vocabulary words, answers and cache manifest, saved with every checkpoint
        self.metadata: dict[str, Any] = {}
        #: the total gradient norm of the last step, as gradient clipping computed it (a device
        #: tensor, never read inside a step; the divergence guard checks it at intervals)
        self.grad_norm: torch.Tensor | None = None
        #: whether this epoch's metric objects are registered with Lightning's logging yet
        self._logged = {"train": False, "val": False}
        #: the official GQA metrics, on a GQA cache (`butd.training.gqa`): stage -> predictions
        self._gqa = {"val": GQAEpoch(), "test": GQAEpoch()}
        self._gqa_on = {"val": False, "test": False}
        #: debias.mode=iter takes two optimizer steps per batch: Lightning's manual optimisation
        self.automatic_optimization = not self.debias_cfg.two_steps
        #: the gradient clip (value, algorithm) of the manual steps: the trainer's settings, which
        #: Lightning refuses to apply itself under manual optimisation (`butd.train` moves them here)
        self.manual_clip: tuple[float | None, str | None] = (None, None)

    def take_gradient_clip(self, trainer_cfg: Any) -> dict[str, Any]:
        """Under manual optimisation (debias.mode=iter) Lightning refuses to clip itself: the
        module takes the trainer config's clip for its own steps. Returns the Trainer arguments
        that go with it ({} under automatic optimisation)."""
        if self.automatic_optimization:
            return {}
        self.manual_clip = (trainer_cfg.get("gradient_clip_val"), trainer_cfg.get("gradient_clip_algorithm"))
        return {"gradient_clip_val": None}

    #: torch.compile's backend for `compile=true` (a test may count graphs with another)
    compile_backend: Any = "inductor"

    def configure_model(self) -> None:
        # In place, so parameter names (and checkpoints) stay those of the eager model. Dynamic
        # shapes from the start: one graph serves every batch size (an epoch's smaller last batch)
        # and every box count, rather than a first graph specialised to the first batch. Dynamo
        # leaves the GRU eager (cuDNN's kernel), so each graph is compiled in pieces around it.
        if self.hparams.get("compile") and not getattr(self, "_compiled", False):
            self.model.compile(backend=self.compile_backend, dynamic=True)
            self._compiled = True

    def forward(
        self,
        v: torch.Tensor,
        q: torch.Tensor,
        b: torch.Tensor | None = None,
        v_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """v: [batch, k, v_dim], q: [batch, seq_len], b: [batch, k, 6], v_mask: [batch, k] bool
        (False for padded boxes; None when every box is real) -> logits [batch, num_answers]."""
        return self.model(v, q, b, v_mask)

    # Logging: a metric object registered once per epoch is computed by Lightning at the epoch's end
    # from everything its updates gathered, so steps only update metrics (device arithmetic) and
    # `self.log` (about 0.5 ms of Python each) runs once per epoch per metric, the step loss only
    # on the steps where Lightning writes logs. Nothing here reads a device value.

    def on_train_epoch_start(self) -> None:
        self._logged["train"] = False

    def on_validation_epoch_start(self) -> None:
        self._logged["val"] = False
        self._gqa["val"].reset()
        self._gqa_on["val"] = self._gqa_tables("val") is not None

    def on_test_epoch_start(self) -> None:
        self._gqa["test"].reset()
        self._gqa_on["test"] = self._gqa_tables("test") is not None

    def on_validation_epoch_end(self) -> None:
        self._log_gqa("val")

    def on_test_epoch_end(self) -> None:
        self._log_gqa("test")

    def _gqa_tables(self, stage: str):
        """The GQA tables and answers of the stage's split, or None (not a GQA cache, no datamodule)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        tables = getattr(datamodule, "gqa_tables", None)
        return tables(stage) if tables is not None else None

    def _log_gqa(self, stage: str) -> None:
        """`val/gqa/<metric>` (`test/gqa/...`) from the epoch's predictions, read here, at its end."""
        found = self._gqa_tables(stage)
        if found is not None and self._gqa[stage].ids:
            tables, answers = found
            for name, value in self._gqa[stage].scores(tables, answers).items():
                self.log(f"{stage}/gqa/{name}", float(value), batch_size=1)
        self._gqa[stage].reset()

    def _log_step(self) -> bool:
        """Whether Lightning writes the logs (and the progress bar reads them) after this step."""
        connector = getattr(self._trainer, "_logger_connector", None)  # None when called alone
        return bool(getattr(connector, "should_update_logs", True))

    def set_prior(self, prior: torch.Tensor) -> None:
        """The question-type prior of the training split ([types, num_answers]), for the debias losses;
        not saved in checkpoints (inference does not use it)."""
        rows = torch.cat((prior.float(), prior.new_zeros(1, prior.size(1)).float()))
        self.qtype_prior = rows.to(self.device)
        top = rows.argmax(dim=1)
        self.qtype_top = torch.where(rows.amax(dim=1) > 0, top, torch.full_like(top, -1))

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The objective of `model.output` (`butd.config.model.OUTPUTS`): the reference's scaled
        BCE, or softmax cross-entropy."""
        return self.output_loss(logits, target)

    def _prior(self, batch: VQABatch, *, required: bool = True) -> torch.Tensor | None:
        """Each question's row of the question-type prior [batch, A], where the method reads it;
        None where it reads none, or (`required` False, outside training) where the batch has no
        question types."""
        if not self.debias.needs_prior:
            return None
        if self.qtype_prior is None or batch.qtype is None:
            if not required:
                return None
            raise RuntimeError(f"debias={self.debias_cfg.name} needs the question-type prior (set_prior)")
        return self.qtype_prior[batch.qtype]

    def _parts(self, batch: VQABatch, *, training: bool = True) -> dict[str, torch.Tensor]:
        """The main logits and what the debias method reads besides (`butd.training.debias`).
        Outside training a batch without question types goes without the prior."""
        args = (batch.v, batch.q, batch.b, batch.v_mask)
        if self.debias.method.reads_parts:
            logits, joint, q_emb = self.model.forward_parts(*args)
            parts = {"logits": logits, "joint": joint, "q_emb": q_emb}
        else:  # the model's own call: compiled with compile=true, seen by its hooks
            parts = {"logits": self(*args)}
        prior = self._prior(batch, required=training)
        if prior is not None:
            parts["prior"] = prior
        if self.debias.needs_visual:
            parts["v_emb"] = visual_mean(batch.v, batch.v_mask)
        return parts

    def _objective(self, parts: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        extra = {k: v for k, v in parts.items() if k != "logits"}
        return self.debias(parts["logits"], target, **extra)

    def _training_loss(self, batch: VQABatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and loss of a training batch under the configured debias method."""
        parts = self._parts(batch)
        return parts["logits"], self._objective(parts, batch.target)

    def _answer_scores(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scores the method answers with (the logits; CF-VQA's TIE): [batch, num_answers]."""
        if not self.debias.changes_inference:
            return parts["logits"]
        return self.debias.answer_scores(parts["logits"], q_emb=parts["q_emb"], v_emb=parts["v_emb"])

    def answer_scores(
        self,
        v: torch.Tensor,
        q: torch.Tensor,
        b: torch.Tensor | None = None,
        v_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """As `forward`, the scores the trained method answers with: the logits, or for a method
        that changes inference (CF-VQA) its own scores. Their argmax is the answer."""
        return method_scores(self.model, self.debias, v, q, b, v_mask)

    def _update_diagnostics(
        self, stage: str, parts: dict[str, torch.Tensor], scores: torch.Tensor, batch: VQABatch
    ) -> list[str]:
        """Feed this batch to the stage's diagnostics; returns the names that got values."""
        if batch.answer_type is None:
            return []
        values: dict[str, torch.Tensor] = {}
        if self.debias.diagnostic_names and (not self.debias.needs_prior or "prior" in parts):
            extra = {k: v for k, v in parts.items() if k != "logits"}
            values.update(self.debias.diagnostics(parts["logits"].detach(), batch.target, **extra))
        if self.qtype_top is not None and batch.qtype is not None:
            pred = scores.detach().argmax(dim=1, keepdim=True)  # [batch, 1]
            qtype = batch.qtype
            values["prior_top"] = (pred.squeeze(1) == self.qtype_top[qtype]).float()
            values["prior_support"] = (self.qtype_prior[qtype].gather(1, pred).squeeze(1) > 0).float()
        for name, value in values.items():
            for metric in self._diagnostics(stage)[name].values():
                metric.update(value, batch.answer_type)
        return list(values)

    def _log_diagnostics(self, stage: str, names: list[str], size: int) -> None:
        for name in names:
            for key, metric in self._diagnostics(stage)[name].items():
                name_key = diagnostic_name(stage, name, key)
                self.log(name_key, metric, on_step=False, on_epoch=True, batch_size=size)

    def _diagnostics(self, stage: str) -> torch.nn.ModuleDict:
        return self.train_diag if stage == "train" else self.val_diag

    def _two_step_training(self, batch: VQABatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """debias.mode=iter: a step of the bias branch on its own loss, then a step of the model
        (with a fresh forward pass) on its loss against the updated branch; one optimizer over
        every parameter, each step's gradient clipped as the trainer's clip says. Gradients are
        zeroed in place, not freed, as in the PyTorch the method's authors ran, so the optimizer
        also moves the parameters that a step's loss does not reach by their momentum. Returns the
        model step's parts (`_parts`) and the sum of the two losses (what one step on both would minimise);
        `grad_norm` is the larger of the two steps' norms, so a non-finite one reaches the
        divergence guard. Lightning counts two optimizer steps per batch (`global_step`)."""
        optimizer = self.optimizers()
        target = batch.target
        # A parameter the optimizer has stepped holds a zeroed gradient, except right after a resume
        # (checkpoints carry no gradients): zeroed again, so a resumed run steps as the straight one.
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None and optimizer.state.get(p):
                    p.grad = torch.zeros_like(p)
        losses, norms = [], []
        for part in ("branch", "model"):
            parts = self._parts(batch)
            prior, q_emb = parts.get("prior"), parts["q_emb"]
            if part == "branch":
                loss = self.debias.branch_step_loss(target, prior=prior, q_emb=q_emb)
            else:
                loss = self.debias.model_step_loss(parts["logits"], target, prior=prior, q_emb=q_emb)
            self.manual_backward(loss)
            self.configure_gradient_clipping(optimizer, *self.manual_clip)
            if self.grad_norm is None:  # no norm clipping: the guard still needs this step's norm
                grads = [p.grad for p in self.parameters() if p.grad is not None]
                self.grad_norm = torch.nn.utils.get_total_norm(grads) if grads else None
            if self.grad_norm is not None:
                norms.append(self.grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
            losses.append(loss.detach())
        self.grad_norm = torch.stack(norms).max() if norms else None
        return parts, losses[0] + losses[1]

    def training_step(self, batch: VQABatch, batch_idx: int) -> torch.Tensor:
        if self.automatic_optimization:
            parts = self._parts(batch)
            loss = self._objective(parts, batch.target)
        else:
            parts, loss = self._two_step_training(batch)
        logits = parts["logits"]
        size = len(batch)
        self.train_score.update(logits, batch.target)
        self.train_loss.update(loss.detach(), weight=size)
        diagnosed = self._update_diagnostics("train", parts, logits, batch)
        if self._log_step():
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, batch_size=size)
        if not self._logged["train"]:
            self._logged["train"] = True
            self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True, batch_size=size)
            self.log(
                "train/score", self.train_score, on_step=False, on_epoch=True, prog_bar=True, batch_size=size
            )
            self._log_diagnostics("train", diagnosed, size)
        return loss

    def validation_step(self, batch: VQABatch, batch_idx: int) -> None:
        # the loss is the main logits' plain loss for every method; the scores, accuracies and so
        # the checkpoint selection follow the method's answers (CF-VQA's TIE, as its authors select)
        parts = self._parts(batch, training=False)
        logits = parts["logits"]
        scores = self._answer_scores(parts)
        loss = self._loss(logits, batch.target)
        size = len(batch)
        self.val_loss.update(loss, weight=size)
        self.val_score.update(scores, batch.target)
        self.val_upper_bound.update(batch.target)
        diagnosed = self._update_diagnostics("val", parts, scores, batch)
        if self._gqa_on["val"]:
            self._gqa["val"].update(batch.question_id, scores)
        official = batch.has_official
        if official:
            for metric in self.val_vqa_acc.values():
                metric.update(scores, batch.acc_labels, batch.acc_values, batch.answer_type)
        if self._logged["val"]:
            return
        self._logged["val"] = True
        self._log_diagnostics("val", diagnosed, size)
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("val/score", self.val_score, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("val/upper_bound", self.val_upper_bound, on_epoch=True, batch_size=size)
        if official:
            for key, metric in self.val_vqa_acc.items():
                self.log(vqa_accuracy_name("val", key), metric, on_epoch=True, batch_size=size)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Lightning's norm clipping, keeping the total norm it computes for the divergence guard."""
        if gradient_clip_val and (gradient_clip_algorithm or "norm") == "norm":
            params = [p for group in optimizer.param_groups for p in group["params"]]
            self.grad_norm = torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            return
        self.grad_norm = None
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def test_step(self, batch: VQABatch, batch_idx: int) -> None:
        """The test split, once with the selected checkpoint: `test/score`, `test/vqa_acc` per type."""
        logits = self.answer_scores(batch.v, batch.q, batch.b, batch.v_mask)
        size = len(batch)
        self.test_score.update(logits, batch.target)
        if self._gqa_on["test"]:
            self._gqa["test"].update(batch.question_id, logits)
        self.log("test/score", self.test_score, on_epoch=True, batch_size=size)
        for key, metric in self.test_vqa_acc.items():
            metric.update(logits, batch.acc_labels, batch.acc_values, batch.answer_type)
            self.log(vqa_accuracy_name("test", key), metric, on_epoch=True, batch_size=size)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return instantiate(self.hparams.optimizer, _convert_="all")(params=self.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["butd"] = self.metadata

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # a checkpoint without metadata never empties the fresh module's (later checkpoints keep it)
        self.metadata = checkpoint.get("butd") or self.metadata
