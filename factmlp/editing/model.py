"""A one-layer Transformer whose only MLP is the fact store, and its training.

The residual stream has two parts. The *fact* part is frozen: each token's fact embedding (the
subject keys; random or zero vectors for words) and, on the output side, the attribute values.
The *learned* part (width ``model_dim``) carries everything else: learned embeddings (one per word,
one shared by all subjects, one shared by all attributes, so no learned weight depends on how many
facts there are) and learned positions.

One layer, two kinds of heads (docs/science.md#inside-a-transformer, extended with language):
- the **fact head** (queries and keys learned from the whole stream) has value and output
  projections frozen to the identity on the fact part, and feeds the MLP only (no bypass): the
  MLP input is z_t = Σ_s α_ts k(w_s). Where it attends to the subject, z_t ≈ that subject's key;
- the **language heads** are ordinary causal attention heads on the learned part, with a residual
  connection, a LayerNorm and a learned unembedding.

logits_t = LN(h_t)·U + β·g(z_t)·Vᵀ, V the vocab × d fact unembedding (attribute values, 0
elsewhere) and β a learned scale. So the attribute a model predicts for subject s is decided by
g(k_s) against the attribute values, exactly the dot-product decoding a fact MLP is built for: an MLP
built for a new map drops in with nothing retrained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from factmlp.editing.task import ATTRIBUTE, SUBJECT, FactTask, sample
from factmlp.mlp import GatedMLP
from factmlp.device import resolve_device


class FactLM(nn.Module):
    """See the module docstring; ``mlp`` is frozen and replaceable with ``swap_mlp``."""

    def __init__(self, task: FactTask, mlp: GatedMLP, *, model_dim: int = 64, heads: int = 2, head_dim: int = 32,
                 seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        f32 = dict(dtype=torch.float32)
        classes = task.token_classes()
        rows = np.arange(task.vocab_size)
        rows[classes == SUBJECT] = task.num_words
        rows[classes == ATTRIBUTE] = task.num_words + 1
        self.register_buffer("row", torch.as_tensor(rows))
        self.register_buffer("fact_in", torch.as_tensor(task.fact_embeddings(), **f32))
        self.register_buffer("fact_out", torch.as_tensor(task.fact_unembeddings(), **f32))
        self.num_attributes = task.num_attributes
        self.d, self.model_dim, self.heads, self.head_dim = task.d, model_dim, heads, head_dim
        width = task.d + model_dim

        def init(*shape, fan_in):
            return nn.Parameter(torch.randn(*shape, generator=gen) / math.sqrt(fan_in))
        self.embed = init(task.num_words + 2, model_dim, fan_in=1)
        self.pos = init(task.seq_len, model_dim, fan_in=1)
        self.fact_qk = init(2, width, head_dim, fan_in=width)
        self.lm_qkv = init(3, heads, width, head_dim, fan_in=width)
        self.lm_out = init(heads * head_dim, model_dim, fan_in=heads * head_dim)
        self.norm = nn.LayerNorm(model_dim)
        self.unembed = init(task.num_words + 2, model_dim, fan_in=model_dim)
        self.swap_mlp(mlp)
        # β starts where the right author's fact logit averages 10, whatever the MLP's output scale
        # (GD MLPs trained with cross-entropy output far larger vectors than regression readouts).
        with torch.no_grad():
            y = self.mlp(torch.as_tensor(task.keys).to(next(self.mlp.parameters()).dtype)).double()
            right = (y * torch.as_tensor(task.values[task.mapping])).sum(dim=1).mean()
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0 / max(float(right), 1e-6)), dtype=torch.float32))

    def swap_mlp(self, mlp: GatedMLP) -> None:
        """Drop in a fact MLP (frozen); nothing else changes."""
        if mlp.d_in != self.d or mlp.d_out != self.d:
            raise ValueError(f"fact MLP maps {mlp.d_in}→{mlp.d_out}, the model's fact part has d={self.d}")
        for p in mlp.parameters():
            p.requires_grad_(False)
        self.mlp = mlp

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def parts(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, resid): the MLP input at every position (B,T,d) and the logits without the MLP (B,T,V)."""
        seq = tokens.shape[1]
        learned = self.embed[self.row[tokens]] + self.pos[:seq]
        facts = self.fact_in[tokens]
        x = torch.cat([facts, learned], dim=-1)
        causal = torch.ones(seq, seq, dtype=torch.bool, device=tokens.device).tril()
        q, k = x @ self.fact_qk[0], x @ self.fact_qk[1]
        scores = (q @ k.transpose(1, 2)) / math.sqrt(self.head_dim)
        z = torch.softmax(scores.masked_fill(~causal, -torch.inf), dim=-1) @ facts
        q, k, v = (torch.einsum("btw,hwe->bhte", x, w) for w in self.lm_qkv)
        o = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = learned + o.transpose(1, 2).reshape(tokens.shape[0], seq, -1) @ self.lm_out
        resid = self.norm(h) @ self.unembed[self.row].T
        return z, resid

    def fact_logits(self, z: torch.Tensor) -> torch.Tensor:
        """β·g(z)·Vᵀ restricted to the attribute tokens (the only ones with a fact unembedding)."""
        p = next(self.mlp.parameters())
        y = self.mlp(z.to(p.dtype)).to(z.dtype)
        return self.scale * y @ self.fact_out[-self.num_attributes:].T


    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        z, resid = self.parts(tokens)
        num_other = resid.shape[-1] - self.num_attributes
        return torch.cat([resid[..., :num_other], resid[..., num_other:] + self.fact_logits(z)], dim=-1)


@dataclass(frozen=True)
class LMConfig:
    """Training of everything but the fact MLP: AdamW, linear warm-up then cosine decay."""

    steps: int = 600
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 50
    seed: int = 0
    model_dim: int = 64
    heads: int = 2
    head_dim: int = 32
    device: str = "cpu"

    def torch_device(self) -> torch.device:
        """'auto' trains on a GPU when there is one; the returned model is always on the CPU."""
        return resolve_device(self.device)


def train_lm(task: FactTask, mlp: GatedMLP, config: LMConfig = LMConfig()) -> tuple[FactLM, list[float]]:
    """Train the model with next-token cross-entropy on every position, the fact MLP frozen.

    Returns the model (on the CPU) and its loss every 50 steps. Deterministic given the config (seeded data and
    init; the caller fixes the thread count).
    """
    model = FactLM(task, mlp, model_dim=config.model_dim, heads=config.heads, head_dim=config.head_dim,
                   seed=config.seed)
    device = config.torch_device()
    model.to(device)
    params = [p for n, p in model.named_parameters() if not n.startswith("mlp.")]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng([config.seed, 101])
    history = []
    for step in range(config.steps):
        lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup)) * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        tokens = torch.as_tensor(sample(task, rng, config.batch).tokens, device=device)
        logits = model(tokens[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == config.steps - 1:
            history.append(float(loss.detach()))
    model.eval()
    return model.cpu(), history
