"""Bias-reduction methods for language-prior research (VQA-CP): each one a training loss.

A method sees the main model's answer logits z [batch, A], the soft targets y [batch, A], the
question-type prior b [batch, A] (the row of each question's type: the mean soft target of each
answer over the training questions of that type), the joint representation h [batch, num_hid]
and the question embedding q [batch, num_hid] (CF-VQA also the mean of the image's object
features). It returns the training loss. At inference every method answers with z alone except
CF-VQA, which answers with its total indirect effect (`DebiasLoss.answer_scores`, used by
training's validation and test, `butd.evaluate` and `butd.predict`).

`DebiasLoss.diagnostics` gives named per-question values that explain a method's behaviour (the
Learned-Mixin gate, RUBi's mask, ...); the module logs their means per answer type
(`{train,val}/diag/<name>`, docs/debias.md).

Each loss is its authors' definition with their released defaults; docs/debias.md gives the
formulas and sources: Clark et al. 2019 (reweight, bias product, Learned-Mixin, LMH), Cadene et
al. 2019 (RUBi), Han et al. 2021 (GGE-D, GGE-Q, GGE-DQ), Niu et al. 2021 (CF-VQA). The losses
that carry the factor A (a sum over answers per question, as the reference's) are those whose
authors scale them so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from butd.config.debias import DEBIAS_METHODS, DebiasConfig, DebiasMethod
from butd.config.model import OUTPUTS
from butd.training.metrics import vqa_bce_loss, vqa_softmax_loss

#: the hidden widths of the question-only classifier c_1 (RUBi, GGE-Q, GGE-DQ), as their authors'
QUESTION_ONLY_HIDDEN: tuple[int, ...] = (1024, 1024)


class DebiasLoss(nn.Module):
    """A method's training loss; its properties are its registry entry's (`method`, a
    `butd.config.debias.DebiasMethod`): `needs_prior`, the batch must carry question types;
    `needs_visual`, `forward` also takes `v_emb`, the mean object feature (`visual_mean`);
    `changes_inference`, `answer_scores` differs from the main logits. `diagnostic_names`: the
    names `diagnostics` returns, fixed per method so the module can make one metric per name
    before the first batch; `two_steps`: the method trains in two optimizer steps per batch
    (`branch_step_loss`, then `model_step_loss`) rather than one step on `forward`'s loss.

    A subclass is bound to its names with `@DEBIAS_METHODS.implements(...)` and built by its
    `from_config`; `build_debias` finds it by `debias.name`.
    """

    diagnostic_names: tuple[str, ...] = ()
    two_steps = False

    def __init__(self, *, method: DebiasMethod) -> None:
        super().__init__()
        self.method = method

    @classmethod
    def from_config(cls, cfg: DebiasConfig, *, method: DebiasMethod, dims: LossDims) -> DebiasLoss:
        """The loss of method `cfg.name` with its settings; `dims`: the model's sizes."""
        return cls(method=method)

    @property
    def needs_prior(self) -> bool:
        return self.method.needs_prior

    @property
    def needs_visual(self) -> bool:
        return self.method.needs_visual

    @property
    def changes_inference(self) -> bool:
        """Whether `answer_scores` differs from the main logits (the method changes inference)."""
        return self.method.changes_inference

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        *,
        prior: torch.Tensor | None = None,
        joint: torch.Tensor | None = None,
        q_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss (a scalar) from the main logits z [batch, A], the targets y [batch, A]
        and what the method reads besides (`prior`, `joint`, `q_emb`; `v_emb` where `needs_visual`)."""
        raise NotImplementedError

    @torch.no_grad()
    def diagnostics(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        *,
        prior: torch.Tensor | None = None,
        joint: torch.Tensor | None = None,
        q_emb: torch.Tensor | None = None,
        v_emb: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Named per-question values [batch] (`diagnostic_names`), from the same inputs as `forward`;
        none by default. Device arithmetic only: the module averages them per answer type."""
        return {}

    def answer_scores(
        self,
        logits: torch.Tensor,
        *,
        q_emb: torch.Tensor | None = None,
        v_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The scores the method answers with, [batch, A] (argmax = the answer): z itself."""
        return logits


def visual_mean(v: torch.Tensor, v_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The mean object feature of each image, over its real boxes: v [batch, k, v_dim] (any float
    dtype), v_mask [batch, k] bool or None -> float32 [batch, v_dim]."""
    v = v.float()
    if v_mask is None:
        return v.mean(1)
    mask = v_mask.to(v.dtype).unsqueeze(2)  # [batch, k, 1]
    return (v * mask).sum(1) / mask.sum(1).clamp(min=1.0)


#: a loss of logits and targets, both [batch, A] (`butd.training.metrics`)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LossDims:
    """What a loss is built for: the model's hidden width, the answers, the object feature size
    (CF-VQA's vision-only branch) and the loss of the model's output (`model.output`,
    `butd.config.model.OUTPUTS`)."""

    num_hid: int
    num_answers: int
    v_dim: int | None = None
    output_loss: Loss = vqa_bce_loss


@DEBIAS_METHODS.implements("none")
class PlainLoss(DebiasLoss):
    """No debiasing: the loss of the model's output, the reference's scaled BCE with
    `model.output=sigmoid` (`butd.training.metrics`)."""

    def __init__(
        self, *, method: DebiasMethod, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> None:
        super().__init__(method=method)
        self.loss = loss

    @classmethod
    def from_config(cls, cfg: DebiasConfig, *, method: DebiasMethod, dims: LossDims) -> DebiasLoss:
        return cls(method=method, loss=dims.output_loss)

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        return self.loss(logits, target)


@DEBIAS_METHODS.implements("reweight")
class Reweight(DebiasLoss):
    """Per-answer BCE weighted by w = 1 - b: sum(w * bce) / sum(w), over the batch's questions and
    answers (Clark et al.'s definition: no factor A, so its scale is a per-answer mean, about A
    times smaller than the reference loss's). Answers the question type already predicts count less.
    """

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        weights = 1.0 - prior
        per_answer = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return (weights * per_answer).sum() / weights.sum()


def _pair_log_probs(logits: torch.Tensor, log_bias: torch.Tensor) -> torch.Tensor:
    """(log s(z), log s(-z)) + log_bias, renormalised over the pair: [batch, A, 2]."""
    pair = torch.stack((F.logsigmoid(logits), F.logsigmoid(-logits)), dim=2) + log_bias
    return pair - torch.logsumexp(pair, dim=2, keepdim=True)


def _pair_nll(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-sum_a [y log p1 + (1 - y) log p0], mean over questions."""
    return -(target * log_probs[..., 0] + (1.0 - target) * log_probs[..., 1]).sum(1).mean(0)


def _log_prior_pair(prior: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
    """(log(b + s), log(1 - b + s)) with the smoothing s > 0: finite where b is 0 or 1. [batch, A, 2]."""
    return (torch.stack((prior, 1.0 - prior), dim=2) + smooth).log()


@DEBIAS_METHODS.implements("bias_product")
class BiasProduct(DebiasLoss):
    """The model's per-answer distribution times the prior's, as the training likelihood, the prior
    smoothed by a learned s(w_s) added to b and to 1 - b (Clark et al.'s init w_s = -1), so an
    answer whose prior is exactly 0 or 1 still teaches its logit."""

    def __init__(self, *, method: DebiasMethod, smooth_init: float = -1.0) -> None:
        super().__init__(method=method)
        self.smooth = nn.Parameter(torch.full((1,), float(smooth_init)))

    @classmethod
    def from_config(cls, cfg: DebiasConfig, *, method: DebiasMethod, dims: LossDims) -> DebiasLoss:
        return cls(method=method, smooth_init=cfg.smooth_init)

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        log_bias = _log_prior_pair(prior, torch.sigmoid(self.smooth))
        return _pair_nll(_pair_log_probs(logits, log_bias), target)


@DEBIAS_METHODS.implements("learned_mixin", "lmh")
class LearnedMixin(DebiasLoss):
    """Bias product with the bias scaled by g = softplus(w . h + c), learned from the joint
    representation, and the prior smoothed by a learned s(w_s) (Clark et al.'s init w_s = -1).
    `entropy_weight` > 0 is LMH: it adds w_H times the mean entropy of softmax(g log B), so the
    model cannot switch the bias off by driving g to 0."""

    def __init__(
        self, *, method: DebiasMethod, num_hid: int, entropy_weight: float = 0.0, smooth_init: float = -1.0
    ) -> None:
        super().__init__(method=method)
        self.gate = nn.Linear(num_hid, 1)
        self.smooth = nn.Parameter(torch.full((1,), float(smooth_init)))
        self.entropy_weight = entropy_weight

    @classmethod
    def from_config(cls, cfg: DebiasConfig, *, method: DebiasMethod, dims: LossDims) -> DebiasLoss:
        """LMH is Learned-Mixin with the entropy term (`entropy_penalty`, `debias.entropy_weight`)."""
        weight = cfg.entropy_weight if method.entropy_penalty else 0.0
        return cls(method=method, num_hid=dims.num_hid, entropy_weight=weight, smooth_init=cfg.smooth_init)

    diagnostic_names = ("gate", "smooth")

    @torch.no_grad()
    def diagnostics(self, logits, target, *, prior=None, joint=None, q_emb=None, v_emb=None):
        """`gate`: g = softplus(w . h + c) of each question; `smooth`: s(w_s), the same for all."""
        gate = F.softplus(self.gate(joint)).squeeze(1).float()
        return {"gate": gate, "smooth": torch.sigmoid(self.smooth).float().expand_as(gate)}

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        g = F.softplus(self.gate(joint))  # [batch, 1]
        log_bias = _log_prior_pair(prior, torch.sigmoid(self.smooth)) * g.unsqueeze(2)  # [batch, A, 2]
        loss = _pair_nll(_pair_log_probs(logits, log_bias), target)
        if self.entropy_weight > 0:
            log_p = log_bias.log_softmax(dim=2)
            entropy = -(log_p.exp() * log_p).sum(2).mean()
            loss = loss + self.entropy_weight * entropy
        return loss


class QuestionOnlyBranch(nn.Module):
    """c_1, an MLP on the question embedding (hidden 1024, 1024, ReLU; output A), and c_2, a
    Linear(A, A) on c_1's output, as RUBi's and GGE's authors build them. The embedding is read
    detached: no loss teaches the question encoder through the branch."""

    def __init__(self, *, num_hid: int, num_answers: int) -> None:
        super().__init__()
        self.c_1 = _mlp(num_hid, num_answers, QUESTION_ONLY_HIDDEN)
        self.c_2 = nn.Linear(num_answers, num_answers)

    def forward(self, q_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_emb: [batch, num_hid] -> (q_pred = c_1(q), q_out = c_2(q_pred)), each [batch, A]."""
        q_pred = self.c_1(q_emb.detach())
        return q_pred, self.c_2(q_pred)


@DEBIAS_METHODS.implements("rubi")
class RUBi(DebiasLoss):
    """The main logits masked during training: loss on z * s(q_pred), q_pred = c_1(q), plus the
    question-only loss on c_2(q_pred). BCE on soft targets for both (as UpDn ports of RUBi do;
    the authors' own code uses softmax cross-entropy on one sampled answer)."""

    def __init__(self, *, method: DebiasMethod, num_hid: int, num_answers: int) -> None:
        super().__init__(method=method)
        self.branch = QuestionOnlyBranch(num_hid=num_hid, num_answers=num_answers)

    @classmethod
    def from_config(cls, cfg: DebiasConfig, *, method: DebiasMethod, dims: LossDims) -> DebiasLoss:
        return cls(method=method, num_hid=dims.num_hid, num_answers=dims.num_answers)

    diagnostic_names = ("mask",)

    @torch.no_grad()
    def diagnostics(self, logits, target, *, prior=None, joint=None, q_emb=None, v_emb=None):
        """`mask`: the mean over the answers of the mask s(q_pred) of each question."""
        return {"mask": torch.sigmoid(self.branch(q_emb)[0]).mean(1).float()}

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        q_pred, q_out = self.branch(q_emb)
        return vqa_bce_loss(logits * torch.sigmoid(q_pred), target) + vqa_bce_loss(q_out, target)


def gge_pseudo_labels(target: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """2 y s(-2 y B): the negative gradient GGE's paper derives for the bias ensemble B's loss
    (the authors' code keeps this form). Not detached, as in the authors' code."""
    return 2.0 * target * torch.sigmoid(-2.0 * target * bias)


def pseudo_weight(target: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """[batch]: the factor 2 s(-2 y B) by which GGE's pseudo-label scales the target, at each
    question's top-scored answer (1: the bias explains none of it; below 1: part of it)."""
    top = target.argmax(dim=1, keepdim=True)
    y, b = target.gather(1, top), bias.gather(1, top)
    return (2.0 * torch.sigmoid(-2.0 * y * b)).squeeze(1).float()


@DEBIAS_METHODS.implements("gge")
class GreedyGradientEnsemble(DebiasLoss):
    """GGE-D: the prior as the bias model; BCE of z against pseudo-labels 2 y s(-2 y b), so z
    learns what the prior does not explain."""

    diagnostic_names = ("pseudo_weight",)

    @torch.no_grad()
    def diagnostics(self, logits, target, *, prior=None, joint=None, q_emb=None, v_emb=None):
        """`pseudo_weight`: the factor 2 s(-2 y b) by which the pseudo-label scales the target, at
        each question's top-scored answer (1: the prior explains none of it; below 1: part)."""
        return {"pseudo_weight": pseudo_weight(target, prior)}

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        return vqa_bce_loss(logits, gge_pseudo_labels(target, prior))


@DEBIAS_METHODS.implements("gge_q", "gge_dq")
class GreedyGradientQuestion(DebiasLoss):
    """GGE-Q (`with_prior=False`) and GGE-DQ (`with_prior=True`): a question-only branch
    (c_1, c_2, as RUBi's) as a bias model, trained greedily before the main model.

    - GGE-Q: the branch learns the targets, BCE(c_2(q_pred), y); z learns the pseudo-labels of
      B = s(q_out), the branch's probabilities, as GGE-DQ reads the branch (the authors' latest
      code reads the logits q_out there: pseudo-labels up to 2 y, so BCE against them has no
      lower bound and training diverges; their first release read s(q_pred)).
    - GGE-DQ: the prior first, then the branch: the branch learns the prior's pseudo-labels
      2 y s(-2 y b); z learns those of B = s(q) + b.

    With B >= 0 every pseudo-label lies in [0, y].

    `mode="tog"` sums both losses in one step (`forward`), with q = q_out. `mode="iter"` takes two
    optimizer steps per batch: `branch_step_loss`, then `model_step_loss`; there GGE-DQ's B uses
    q = q_pred = c_1(q), as the authors' code does. Every loss keeps the factor A.
    """

    def __init__(self, *, method: DebiasMethod, num_hid: int, num_answers: int, mode: str = "tog") -> None:
        super().__init__(method=method)
        self.branch = QuestionOnlyBranch(num_hid=num_hid, num_answers=num_answers)
        #: GGE-DQ: the prior first, then the branch
        self.with_prior = method.needs_prior
        self.mode = mode
        self.two_steps = mode == "iter"

    @classmethod
    def from_config(cls, cfg: DebiasConfig, *, method: DebiasMethod, dims: LossDims) -> DebiasLoss:
        return cls(method=method, num_hid=dims.num_hid, num_answers=dims.num_answers, mode=cfg.mode)

    diagnostic_names = ("pseudo_weight",)

    def _bias(self, prior: torch.Tensor | None, q_branch: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(q_branch) + prior if self.with_prior else torch.sigmoid(q_branch)

    @torch.no_grad()
    def diagnostics(self, logits, target, *, prior=None, joint=None, q_emb=None, v_emb=None):
        """`pseudo_weight`: as GGE-D's, with the bias B the main model learns against."""
        q_pred, q_out = self.branch(q_emb)
        return {
            "pseudo_weight": pseudo_weight(
                target, self._bias(prior, q_pred if self.two_steps and self.with_prior else q_out)
            )
        }

    def _branch_loss(self, q_out: torch.Tensor, target: torch.Tensor, prior: torch.Tensor | None):
        labels = gge_pseudo_labels(target, prior) if self.with_prior else target
        return vqa_bce_loss(q_out, labels)

    def _model_loss(self, logits, target, prior, q_branch: torch.Tensor) -> torch.Tensor:
        return vqa_bce_loss(logits, gge_pseudo_labels(target, self._bias(prior, q_branch)))

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        _, q_out = self.branch(q_emb)
        return self._model_loss(logits, target, prior, q_out) + self._branch_loss(q_out, target, prior)

    def branch_step_loss(self, target: torch.Tensor, *, prior=None, q_emb=None) -> torch.Tensor:
        """The first step of `mode="iter"`: the branch's own loss."""
        _, q_out = self.branch(q_emb)
        return self._branch_loss(q_out, target, prior)

    def model_step_loss(self, logits, target, *, prior=None, q_emb=None) -> torch.Tensor:
        """The second step of `mode="iter"`: z against the pseudo-labels of the (updated) bias."""
        q_pred, q_out = self.branch(q_emb)
        return self._model_loss(logits, target, prior, q_pred if self.with_prior else q_out)


def _mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...] = QUESTION_ONLY_HIDDEN) -> nn.Sequential:
    """Linear layers with a ReLU between them: in_dim -> hidden... -> out_dim."""
    dims = (in_dim, *hidden, out_dim)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@DEBIAS_METHODS.implements("cfvqa")
class CounterfactualVQA(DebiasLoss):
    """CF-VQA (Niu et al. 2021) with SUM fusion: the main logits z (the knowledge branch, K) fused
    with a question-only branch q_pred = c_q(q) and a vision-only branch v_pred = c_v(mean v)
    as h(z, q, v) = log s(z + q_pred + v_pred). Both branches read their inputs detached (no
    gradient to the encoder) and are MLPs with two hidden layers of 1024; each has its own loss on
    a further Linear(A, A) (q_out, v_out), as the authors' code.

    Training, as the authors': the cross-entropy of softmax(h_te) over the answers (h_te =
    h(z, q_pred, v_pred)) + that of softmax(q_out) + that of softmax(v_out), against the soft
    targets made a distribution (`vqa_softmax_loss`: the expectation of the authors' loss on an
    answer sampled by annotator count), + the cross-entropy of softmax(h_nde) against softmax(h_te)
    held fixed, which teaches the learned constant c alone: h_nde = h(c, q_pred, c) (the
    counterfactual world where the image and the knowledge take the constant c, initialised at 0).
    Inference: TIE = h_te - h_nde, the total effect minus the question's natural direct effect.
    """

    diagnostic_names = ("constant", "tie_changed")

    def __init__(
        self, *, method: DebiasMethod, num_hid: int, v_dim: int, num_answers: int, hidden: int = 1024
    ) -> None:
        super().__init__(method=method)
        self.q_branch = _mlp(num_hid, num_answers, (hidden, hidden))
        self.q_out = nn.Linear(num_answers, num_answers)
        self.v_branch = _mlp(v_dim, num_answers, (hidden, hidden))
        self.v_out = nn.Linear(num_answers, num_answers)
        self.constant = nn.Parameter(torch.zeros(()))

    @classmethod
    def from_config(cls, cfg: DebiasConfig, *, method: DebiasMethod, dims: LossDims) -> DebiasLoss:
        if dims.v_dim is None:
            raise ValueError("debias=cfvqa needs v_dim, the object feature size of its vision-only branch")
        return cls(method=method, num_hid=dims.num_hid, v_dim=dims.v_dim, num_answers=dims.num_answers)

    def branches(self, q_emb: torch.Tensor, v_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_pred, v_pred [batch, A] from q_emb [batch, num_hid] and v_emb [batch, v_dim], detached."""
        return self.q_branch(q_emb.detach().float()), self.v_branch(v_emb.detach().float())

    def effects(
        self, logits: torch.Tensor, q_pred: torch.Tensor, v_pred: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h_te = log s(z + q_pred + v_pred) and h_nde = log s(c + q_pred + c), both [batch, A]."""
        te = F.logsigmoid(logits.float() + q_pred + v_pred)
        nde = F.logsigmoid(q_pred + 2.0 * self.constant)
        return te, nde

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None, v_emb=None):
        q_pred, v_pred = self.branches(q_emb, v_emb)
        te = F.logsigmoid(logits.float() + q_pred + v_pred)  # h_te
        # the authors' cross-entropy over the answers, each branch's scores taken as logits
        loss = vqa_softmax_loss(te, target)
        loss = loss + vqa_softmax_loss(self.q_out(q_pred), target)
        loss = loss + vqa_softmax_loss(self.v_out(v_pred), target)
        # only c learns from this term: h_te is held fixed, h_nde sees q_pred detached
        nde = F.logsigmoid(q_pred.detach() + 2.0 * self.constant)
        kl = -(te.detach().softmax(dim=1) * nde.log_softmax(dim=1)).sum(1).mean()
        return loss + kl

    def answer_scores(self, logits, *, q_emb=None, v_emb=None):
        """TIE = h_te - h_nde [batch, A]: log p(a | q, v) - log p(a | q, no image)."""
        te, nde = self.effects(logits, *self.branches(q_emb, v_emb))
        return te - nde

    @torch.no_grad()
    def diagnostics(self, logits, target, *, prior=None, joint=None, q_emb=None, v_emb=None):
        """`constant`: c; `tie_changed`: 1 where the TIE's argmax (the answer given) differs from
        the total effect's (the answer of the fused model), else 0."""
        te, nde = self.effects(logits, *self.branches(q_emb, v_emb))
        changed = ((te - nde).argmax(dim=1) != te.argmax(dim=1)).float()
        return {"constant": self.constant.float().expand_as(changed), "tie_changed": changed}


def method_scores(
    model: nn.Module,
    debias: DebiasLoss,
    v: torch.Tensor,
    q: torch.Tensor,
    b: torch.Tensor | None = None,
    v_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The scores a model trained with `debias` answers with, [batch, A]: its logits, or for a
    method that changes inference (CF-VQA) the method's scores from the model's parts."""
    if not debias.changes_inference:
        return model(v, q, b, v_mask)
    logits, _, q_emb = model.forward_parts(v, q, b, v_mask)
    return debias.answer_scores(logits, q_emb=q_emb, v_emb=visual_mean(v, v_mask))


class MethodAnswers(nn.Module):
    """A model and its debias method as one module with the model's call signature, returning the
    scores the method answers with (`method_scores`): what evaluate and predict run."""

    def __init__(self, *, model: nn.Module, debias: DebiasLoss) -> None:
        super().__init__()
        self.model = model
        self.debias = debias

    def forward(self, v, q, b=None, v_mask=None) -> torch.Tensor:
        return method_scores(self.model, self.debias, v, q, b, v_mask)


def build_debias(
    cfg: DebiasConfig,
    *,
    num_hid: int,
    num_answers: int,
    v_dim: int | None = None,
    output: str = "sigmoid",
) -> DebiasLoss:
    """The loss module of method `cfg.name` (the class its registry entry is bound to); its
    parameters train with the model's. `v_dim`: the object feature size (CF-VQA's vision-only
    branch); `output`: `model.output`, whose loss `none` trains with."""
    method = DEBIAS_METHODS[cfg.name]
    dims = LossDims(
        num_hid=num_hid, num_answers=num_answers, v_dim=v_dim, output_loss=OUTPUTS.implementation(output)
    )
    return DEBIAS_METHODS.implementation(cfg.name).from_config(cfg, method=method, dims=dims)
