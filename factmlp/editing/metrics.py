"""Edit metrics: efficacy, paraphrase, specificity, their harmonic mean, and non-fact perplexity.

All metrics read the model through a ``Readout``: what the frozen rest of the model contributes at
a set of positions. The MLP writes only into the attribute logits (the other tokens have no fact
unembedding), and all attributes share one learned unembedding row, so at a position the logits are

    attributes:  a_t + β·g(z_t)·Vᵀ        every other token w:  r_t[w]   (unchanged by any MLP)

and three numbers per position summarise the other tokens exactly: their largest logit (for top-1),
their log-sum-exp (for probabilities) and, at text positions, the target's logit. A prediction is
right when it is top-1 over the *whole* vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from factmlp.mlp import GatedMLP


@dataclass(frozen=True)
class Readout:
    """Per position: MLP input ``z`` (N×d), the attributes' shared logit ``attr``, the largest and the
    log-sum-exp of the other tokens' logits, and (text positions) the target token's logit."""

    z: torch.Tensor
    attr: torch.Tensor
    other_max: torch.Tensor
    other_lse: torch.Tensor
    target_logit: torch.Tensor | None = None

    def take(self, index) -> "Readout":
        index = torch.as_tensor(index)
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Readout(pick(self.z), pick(self.attr), pick(self.other_max), pick(self.other_lse),
                       pick(self.target_logit))


def attribute_logits(mlp: GatedMLP, scale: float, values: torch.Tensor, readout: Readout) -> torch.Tensor:
    """a_t + β·g(z_t)·Vᵀ for every position (N×A), in float64."""
    p = next(mlp.parameters())
    y = mlp(readout.z.to(p.dtype)).double()
    return readout.attr.double()[:, None] + scale * y @ values.double().T


def correct(attr_logits: torch.Tensor, other_max: torch.Tensor, targets) -> torch.Tensor:
    """Top-1 over the whole vocabulary is the target attribute (strictly above every other token)."""
    targets = torch.as_tensor(targets)
    right = attr_logits.gather(1, targets[:, None])[:, 0]
    rivals = attr_logits.clone()
    rivals.scatter_(1, targets[:, None], -torch.inf)
    return (right > rivals.max(dim=1).values) & (right > other_max.double())


def target_log_prob(attr_logits: torch.Tensor, other_lse: torch.Tensor, targets) -> torch.Tensor:
    """log p(target attribute) under the full softmax."""
    targets = torch.as_tensor(targets)
    total = torch.logaddexp(torch.logsumexp(attr_logits, dim=1), other_lse.double())
    return attr_logits.gather(1, targets[:, None])[:, 0] - total


def text_nll(attr_logits: torch.Tensor, readout: Readout) -> torch.Tensor:
    """−log p(target) at text positions whose target is not an attribute (so only the normaliser moves)."""
    total = torch.logaddexp(torch.logsumexp(attr_logits, dim=1), readout.other_lse.double())
    return total - readout.target_logit.double()


def harmonic_mean(values) -> float:
    """Harmonic mean; 0 when any value is 0 (as an edit that fails one criterion fails overall)."""
    values = [float(v) for v in values]
    if any(v < 0 for v in values):
        raise ValueError(f"harmonic mean of negative values {values}")
    if any(v == 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


def perplexity(nll: torch.Tensor) -> float:
    return math.exp(float(nll.mean()))


def edit_metrics(*, efficacy_hits, paraphrase_hits, specificity_hits, nll_after, nll_before) -> dict:
    """The four scores from per-prompt hits (booleans) and per-token NLLs after and before the edit."""
    mean = lambda x: float(np.mean(np.asarray(x, dtype=float)))  # noqa: E731
    efficacy, paraphrase, specificity = mean(efficacy_hits), mean(paraphrase_hits), mean(specificity_hits)
    ppl_after, ppl_before = perplexity(torch.as_tensor(nll_after)), perplexity(torch.as_tensor(nll_before))
    return {"efficacy": efficacy, "paraphrase": paraphrase, "specificity": specificity,
            "score": harmonic_mean([efficacy, paraphrase, specificity]),
            "ppl_before": ppl_before, "ppl_after": ppl_after, "ppl_ratio": ppl_after / ppl_before}
