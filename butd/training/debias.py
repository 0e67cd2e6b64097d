"""Bias-reduction methods for language-prior research (VQA-CP): each one a training loss.

A method sees the main model's answer logits z [batch, A], the soft targets y [batch, A], the
question-type prior b [batch, A] (the row of each question's type: the mean soft target of each
answer over the training questions of that type), the joint representation h [batch, num_hid]
and the question embedding q [batch, num_hid]. It returns the training loss; at inference every
method here answers with z alone, so evaluation and prediction need no change.

Each loss is its authors' definition with their released defaults; docs/debias.md gives the
formulas and sources: Clark et al. 2019 (reweight, bias product, Learned-Mixin, LMH), Cadene et
al. 2019 (RUBi), Han et al. 2021 (GGE-D, GGE-Q, GGE-DQ). The losses that carry the factor A (a
sum over answers per question, as the reference's) are those whose authors scale them so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from butd.config.debias import DebiasConfig
from butd.training.metrics import vqa_bce_loss

#: the hidden widths of the question-only classifier c_1 (RUBi, GGE-Q, GGE-DQ), as their authors'
QUESTION_ONLY_HIDDEN: tuple[int, ...] = (1024, 1024)


class DebiasLoss(nn.Module):
    """The reference loss; subclasses change it. `needs_prior`: the batch must carry question types.

    `two_steps`: the method trains in two optimizer steps per batch (`branch_step_loss`, then
    `model_step_loss`) rather than one step on `forward`'s loss.
    """

    needs_prior = False
    two_steps = False

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        *,
        prior: torch.Tensor | None = None,
        joint: torch.Tensor | None = None,
        q_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return vqa_bce_loss(logits, target)


class Reweight(DebiasLoss):
    """Per-answer BCE weighted by w = 1 - b: sum(w * bce) / sum(w), over the batch's questions and
    answers (Clark et al.'s definition: no factor A, so its scale is a per-answer mean, about A
    times smaller than the reference loss's). Answers the question type already predicts count less.
    """

    needs_prior = True

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


class BiasProduct(DebiasLoss):
    """The model's per-answer distribution times the prior's, as the training likelihood, the prior
    smoothed by a learned s(w_s) added to b and to 1 - b (Clark et al.'s init w_s = -1), so an
    answer whose prior is exactly 0 or 1 still teaches its logit."""

    needs_prior = True

    def __init__(self, *, smooth_init: float = -1.0) -> None:
        super().__init__()
        self.smooth = nn.Parameter(torch.full((1,), float(smooth_init)))

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        log_bias = _log_prior_pair(prior, torch.sigmoid(self.smooth))
        return _pair_nll(_pair_log_probs(logits, log_bias), target)


class LearnedMixin(DebiasLoss):
    """Bias product with the bias scaled by g = softplus(w . h + c), learned from the joint
    representation, and the prior smoothed by a learned s(w_s) (Clark et al.'s init w_s = -1).
    `entropy_weight` > 0 is LMH: it adds w_H times the mean entropy of softmax(g log B), so the
    model cannot switch the bias off by driving g to 0."""

    needs_prior = True

    def __init__(self, *, num_hid: int, entropy_weight: float = 0.0, smooth_init: float = -1.0) -> None:
        super().__init__()
        self.gate = nn.Linear(num_hid, 1)
        self.smooth = nn.Parameter(torch.full((1,), float(smooth_init)))
        self.entropy_weight = entropy_weight

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
        widths = (num_hid, *QUESTION_ONLY_HIDDEN)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        self.c_1 = nn.Sequential(*layers, nn.Linear(widths[-1], num_answers))
        self.c_2 = nn.Linear(num_answers, num_answers)

    def forward(self, q_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_emb: [batch, num_hid] -> (q_pred = c_1(q), q_out = c_2(q_pred)), each [batch, A]."""
        q_pred = self.c_1(q_emb.detach())
        return q_pred, self.c_2(q_pred)


class RUBi(DebiasLoss):
    """The main logits masked during training: loss on z * s(q_pred), q_pred = c_1(q), plus the
    question-only loss on c_2(q_pred). BCE on soft targets for both (as UpDn ports of RUBi do;
    the authors' own code uses softmax cross-entropy on one sampled answer)."""

    def __init__(self, *, num_hid: int, num_answers: int) -> None:
        super().__init__()
        self.branch = QuestionOnlyBranch(num_hid=num_hid, num_answers=num_answers)

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        q_pred, q_out = self.branch(q_emb)
        return vqa_bce_loss(logits * torch.sigmoid(q_pred), target) + vqa_bce_loss(q_out, target)


def gge_pseudo_labels(target: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """2 y s(-2 y B): the negative gradient GGE's paper derives for the bias ensemble B's loss
    (the authors' code keeps this form). Not detached, as in the authors' code."""
    return 2.0 * target * torch.sigmoid(-2.0 * target * bias)


class GreedyGradientEnsemble(DebiasLoss):
    """GGE-D: the prior as the bias model; BCE of z against pseudo-labels 2 y s(-2 y b), so z
    learns what the prior does not explain."""

    needs_prior = True

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        return vqa_bce_loss(logits, gge_pseudo_labels(target, prior))


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

    def __init__(self, *, num_hid: int, num_answers: int, with_prior: bool, mode: str = "tog") -> None:
        super().__init__()
        self.branch = QuestionOnlyBranch(num_hid=num_hid, num_answers=num_answers)
        self.with_prior = with_prior
        self.mode = mode
        self.needs_prior = with_prior
        self.two_steps = mode == "iter"

    def _branch_loss(self, q_out: torch.Tensor, target: torch.Tensor, prior: torch.Tensor | None):
        labels = gge_pseudo_labels(target, prior) if self.with_prior else target
        return vqa_bce_loss(q_out, labels)

    def _model_loss(self, logits, target, prior, q_branch: torch.Tensor) -> torch.Tensor:
        bias = torch.sigmoid(q_branch) + prior if self.with_prior else torch.sigmoid(q_branch)
        return vqa_bce_loss(logits, gge_pseudo_labels(target, bias))

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


def build_debias(cfg: DebiasConfig, *, num_hid: int, num_answers: int) -> DebiasLoss:
    """The loss module of method `cfg.name`; its parameters train with the model's."""
    if cfg.name == "none":
        return DebiasLoss()
    if cfg.name == "reweight":
        return Reweight()
    if cfg.name == "bias_product":
        return BiasProduct(smooth_init=cfg.smooth_init)
    if cfg.name == "learned_mixin":
        return LearnedMixin(num_hid=num_hid, smooth_init=cfg.smooth_init)
    if cfg.name == "lmh":
        return LearnedMixin(num_hid=num_hid, entropy_weight=cfg.entropy_weight, smooth_init=cfg.smooth_init)
    if cfg.name == "rubi":
        return RUBi(num_hid=num_hid, num_answers=num_answers)
    if cfg.name == "gge":
        return GreedyGradientEnsemble()
    if cfg.name in ("gge_q", "gge_dq"):
        return GreedyGradientQuestion(
            num_hid=num_hid, num_answers=num_answers, with_prior=cfg.name == "gge_dq", mode=cfg.mode
        )
    raise ValueError(f"no loss for debias.name={cfg.name!r}")
