"""Bias-reduction methods for language-prior research (VQA-CP): each one a training loss.

A method sees the main model's answer logits z [batch, A], the soft targets y [batch, A], the
question-type prior b [batch, A] (the row of each question's type: the mean soft target of each
answer over the training questions of that type), the joint representation h [batch, num_hid]
and the question embedding q [batch, num_hid]. It returns the training loss; at inference every
method here answers with z alone, so evaluation and prediction need no change.

Losses keep the reference's scale (a sum over answers, a mean over questions), so the learning
rate and gradient clip tuned for the reference stay right. Definitions: DESIGN.md, section 1b
(Clark et al. 2019 for reweight, bias product, Learned-Mixin and LMH; Cadene et al. 2019 for
RUBi; Han et al. 2021 for GGE-D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from butd.config.debias import DebiasConfig
from butd.training.metrics import vqa_bce_loss

#: keeps log(b) and log(1 - b) finite where the prior is exactly 0 or 1
PRIOR_EPS = 1e-12


class DebiasLoss(nn.Module):
    """The reference loss; subclasses change it. `needs_prior`: the batch must carry question types."""

    needs_prior = False

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
    """Per-answer BCE weighted by 1 - b, divided by the weights' sum (times A: the reference scale).

    Answers the question type already predicts count less. With b = 0 it is the reference loss.
    """

    needs_prior = True

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        weights = 1.0 - prior
        per_answer = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return (weights * per_answer).sum() / weights.sum() * target.size(1)


def _pair_log_probs(logits: torch.Tensor, log_bias: torch.Tensor) -> torch.Tensor:
    """(log s(z), log s(-z)) + log_bias, renormalised over the pair: [batch, A, 2]."""
    pair = torch.stack((F.logsigmoid(logits), F.logsigmoid(-logits)), dim=2) + log_bias
    return pair - torch.logsumexp(pair, dim=2, keepdim=True)


def _pair_nll(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-sum_a [y log p1 + (1 - y) log p0], mean over questions."""
    return -(target * log_probs[..., 0] + (1.0 - target) * log_probs[..., 1]).sum(1).mean(0)


def _log_prior_pair(prior: torch.Tensor, smooth: torch.Tensor | float = 0.0) -> torch.Tensor:
    """(log(b + s), log(1 - b + s)): [batch, A, 2]."""
    pair = torch.stack((prior, 1.0 - prior), dim=2) + smooth
    return pair.clamp(min=PRIOR_EPS).log()


class BiasProduct(DebiasLoss):
    """The model's per-answer distribution times the prior's, as the training likelihood.

    With b = 0.5 everywhere the bias cancels and the loss is the reference BCE.
    """

    needs_prior = True

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        return _pair_nll(_pair_log_probs(logits, _log_prior_pair(prior)), target)


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


class RUBi(DebiasLoss):
    """A question-only branch masks the main logits during training: loss on z * s(q_pred) plus
    the branch's own loss. The branch reads the question embedding detached, so neither loss
    teaches the question encoder through it."""

    def __init__(self, *, num_hid: int, num_answers: int) -> None:
        super().__init__()
        self.question_only = nn.Sequential(
            nn.Linear(num_hid, num_hid), nn.ReLU(), nn.Linear(num_hid, num_answers)
        )

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        q_logits = self.question_only(q_emb.detach())
        return vqa_bce_loss(logits * torch.sigmoid(q_logits), target) + vqa_bce_loss(q_logits, target)


class GreedyGradientEnsemble(DebiasLoss):
    """GGE-D: the prior as the bias model; BCE of z against pseudo-labels 2 y s(-2 y b), the
    negative gradient of the bias's loss, so z learns what the prior does not explain."""

    needs_prior = True

    def forward(self, logits, target, *, prior=None, joint=None, q_emb=None):
        pseudo = 2.0 * target * torch.sigmoid(-2.0 * target * prior)
        return vqa_bce_loss(logits, pseudo)


def build_debias(cfg: DebiasConfig, *, num_hid: int, num_answers: int) -> DebiasLoss:
    """The loss module of method `cfg.name`; its parameters train with the model's."""
    if cfg.name == "none":
        return DebiasLoss()
    if cfg.name == "reweight":
        return Reweight()
    if cfg.name == "bias_product":
        return BiasProduct()
    if cfg.name == "learned_mixin":
        return LearnedMixin(num_hid=num_hid, smooth_init=cfg.smooth_init)
    if cfg.name == "lmh":
        return LearnedMixin(num_hid=num_hid, entropy_weight=cfg.entropy_weight, smooth_init=cfg.smooth_init)
    if cfg.name == "rubi":
        return RUBi(num_hid=num_hid, num_answers=num_answers)
    if cfg.name == "gge":
        return GreedyGradientEnsemble()
    raise ValueError(f"no loss for debias.name={cfg.name!r}")
