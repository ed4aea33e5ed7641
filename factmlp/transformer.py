"""A fact MLP inside a Transformer: associative recall with a constrained one-layer model
(docs/science.md#inside-a-transformer).

Task: the sequence ``junk×L, k, junk×L, Q`` (L junk tokens drawn from J junk types, one fact token
k, the query token Q); the label at Q's position is the value token f(k). Vocabulary: the F fact
tokens, then the J junk tokens, then Q.

Model (constrained so that the only way to answer is "attention copies the key, the MLP maps it"):
one layer, one head, no biases or dropout; frozen embeddings tied to the fact-set tables (fact
token t reads in as key k_t and is unembedded as value v_t: fully tied when the fact set is tied;
junk and Q are random unit vectors); attention value and output projections frozen to the
identity, so attention's output is a convex combination of input embeddings; a frozen pre-MLP norm
``x ↦ scale·x/‖x‖`` (an RMSNorm with a fixed weight); no residual bypass, so the MLP's input is the
normed attention output and its output goes straight to the unembedding; the fact MLP frozen. Only
W_q and W_k train. Only the Q position is computed: with one layer, the other positions cannot
influence it.

Schedules: ``insert_then_train`` (build the MLP for f, insert, train attention through it) and
``pretrain_then_swap`` (train attention with an identity MLP on the copy task, then insert an MLP
built for a fresh random permutation and evaluate with no training). ``RecallTransformer.with_mlp``
is the evaluation-time swap.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from factmlp.adam import Adam
from factmlp.evaluate import jacobian_norms, lipschitz_bound, margins, noise_directions
from factmlp.factsets import FactSet, unit_rows
from factmlp.mlp import GatedMLP
from factmlp.options import ParamError


@dataclass(frozen=True)
class Vocab:
    """Input embeddings and unembeddings (tokens × d): F fact tokens, J junk tokens, then Q."""

    inputs: np.ndarray
    outputs: np.ndarray
    num_facts: int
    num_junk: int

    @property
    def query(self) -> int:
        return self.num_facts + self.num_junk

    @property
    def size(self) -> int:
        return len(self.inputs)

    def tied(self) -> "Vocab":
        """The same vocabulary with the unembedding equal to the input embedding (the copy task)."""
        return Vocab(self.inputs, self.inputs, self.num_facts, self.num_junk)


def make_vocab(factset: FactSet, num_junk: int = 9, seed: int = 0) -> Vocab:
    """Fact tokens in as keys and out as values; junk and Q random unit vectors (seeded, own stream)."""
    if num_junk < 1:
        raise ValueError(f"num_junk must be >= 1, got {num_junk}")
    if len(factset.values) != factset.num_facts:
        raise ValueError("the Transformer task needs M = F (one token per fact, keys and values on the same tokens)")
    extra = unit_rows(np.random.default_rng([seed, 31]).standard_normal((num_junk + 1, factset.d)))
    return Vocab(np.vstack([factset.keys, extra]), np.vstack([factset.values, extra]), factset.num_facts, num_junk)


def contexts(vocab: Vocab, facts: torch.Tensor, junk_len: int, generator: torch.Generator) -> torch.Tensor:
    """Token rows ``junk×L, fact, junk×L, Q`` for each fact index (B × (2L+2), int64)."""
    batch = len(facts)
    junk = vocab.num_facts + torch.randint(vocab.num_junk, (batch, 2 * junk_len), generator=generator)
    return torch.cat([junk[:, :junk_len], facts[:, None], junk[:, junk_len:],
                      torch.full((batch, 1), vocab.query, dtype=torch.long)], dim=1)


def eval_tokens(vocab: Vocab, junk_len: int, repeats: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every fact ``repeats`` times with seeded junk: (tokens, fact index of each row)."""
    facts = torch.arange(vocab.num_facts).repeat(repeats)
    return contexts(vocab, facts, junk_len, torch.Generator().manual_seed(seed * 7919 + 1)), facts


DECODES = ("vocab", "facts")


class RecallTransformer(nn.Module):
    """The constrained one-layer model (module docstring); trainable: ``wq`` and ``wk`` only.

    decode: "vocab" (an LM's argmax over every token, junk and Q included) or "facts" (over the fact
    tokens only: exactly the standalone MLP's decoding when attention returns the key).
    """

    def __init__(self, vocab: Vocab, mlp: nn.Module, *, norm_scale: float = 1.0, seed: int = 0,
                 dtype: torch.dtype = torch.float64, wq: torch.Tensor | None = None, wk: torch.Tensor | None = None,
                 decode: str = "vocab"):
        super().__init__()
        if decode not in DECODES:
            raise ParamError("decode", f"got {decode!r}; allowed: {', '.join(DECODES)}")
        self.decode = decode
        d = vocab.inputs.shape[1]
        gen = torch.Generator().manual_seed(seed * 1_000_003 + 17)
        init = lambda: torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
        self.vocab = vocab
        self.register_buffer("embed", torch.as_tensor(vocab.inputs, dtype=dtype))
        self.register_buffer("unembed", torch.as_tensor(vocab.outputs, dtype=dtype))
        self.register_buffer("norm_scale", torch.tensor(float(norm_scale), dtype=dtype))
        self.wq = nn.Parameter((init() if wq is None else wq.detach().clone()).to(dtype))
        self.wk = nn.Parameter((init() if wk is None else wk.detach().clone()).to(dtype))
        self.mlp = _frozen(mlp, dtype)
        self.d = d

    def attend(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attention output at the last (Q) position: Σ_t softmax_t(<W_q x_Q, W_k x_t>/√d) x_t."""
        x = self.embed[tokens]  # (B, T, d)
        q = x[:, -1] @ self.wq.T
        scores = torch.einsum("btd,bd->bt", x @ self.wk.T, q) / math.sqrt(self.d)
        return torch.einsum("bt,btd->bd", torch.softmax(scores, dim=1), x)

    def norm(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm_scale * z / z.norm(dim=-1, keepdim=True).clamp_min(1e-30)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """Logits for an attention output z: unembed(MLP(norm(z))), over the whole vocabulary or (decode
        "facts") over the fact tokens only, the others masked to −inf."""
        logits = self.mlp(self.norm(z)) @ self.unembed.T
        if self.decode == "facts":
            other = torch.arange(logits.shape[1], device=logits.device) >= self.vocab.num_facts
            logits = logits.masked_fill(other, -torch.inf)
        return logits

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.attend(tokens))

    def with_mlp(self, mlp: nn.Module, vocab: Vocab | None = None) -> "RecallTransformer":
        """The evaluation-time swap: the same attention weights around another frozen MLP."""
        return RecallTransformer(vocab or self.vocab, mlp, norm_scale=float(self.norm_scale),
                                 dtype=self.embed.dtype, wq=self.wq, wk=self.wk, decode=self.decode)


def _frozen(mlp: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A private copy in the model's dtype with gradients off: inserting never changes the caller's MLP."""
    mlp = copy.deepcopy(mlp).to(dtype)
    for p in mlp.parameters():
        p.requires_grad_(False)
    return mlp


@dataclass(frozen=True)
class AttentionConfig:
    """The paper's recipe by default: AdamW lr 2e-4, wd 0.1, batch 1280, up to 16k steps, stop at 0.99."""

    steps: int = 16_000
    lr: float = 2e-4
    weight_decay: float = 0.1
    batch: int = 1280
    stop_recall: float = 0.99
    check_every: int = 100
    junk_len: int = 9
    seed: int = 0


@torch.no_grad()
def recall(model: RecallTransformer, tokens: torch.Tensor, labels: torch.Tensor, chunk: int = 4096) -> float:
    """Fraction of rows whose argmax over the whole vocabulary is the label."""
    hits = sum(int((model(tokens[i:i + chunk]).argmax(dim=1) == labels[i:i + chunk]).sum())
               for i in range(0, len(tokens), chunk))
    return hits / len(tokens)


def train_attention(model: RecallTransformer, mapping: np.ndarray, config: AttentionConfig = AttentionConfig()) -> dict:
    """Train W_q, W_k with cross-entropy on the label f(fact) at Q (everything else frozen).

    Every ``check_every`` steps recall is measured on every fact once (a fixed junk draw); training
    stops once it reaches ``stop_recall``. Returns steps run, last training loss and that recall.
    """
    if config.steps < 0 or config.batch < 1 or config.check_every < 1:
        raise ValueError(f"need steps >= 0, batch >= 1, check_every >= 1; got {config}")
    labels_of = torch.as_tensor(np.asarray(mapping), dtype=torch.long)
    gen = torch.Generator().manual_seed(config.seed * 104_729 + 5)
    check_tokens, check_facts = eval_tokens(model.vocab, config.junk_len, 1, config.seed + 1)
    trained = {"wq": model.wq, "wk": model.wk}
    optimizer = Adam(trained, weight_decay=config.weight_decay)
    loss, step, score = float("nan"), 0, recall(model, check_tokens, labels_of[check_facts])
    while score < config.stop_recall and step < config.steps:
        facts = torch.randint(model.vocab.num_facts, (config.batch,), generator=gen)
        out = torch.nn.functional.cross_entropy(model(contexts(model.vocab, facts, config.junk_len, gen)),
                                                labels_of[facts])
        out.backward()
        optimizer.step(trained, {k: p.grad for k, p in trained.items()}, config.lr)
        for p in trained.values():
            p.grad = None
        step, loss = step + 1, out.item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"attention loss is {loss} at step {step}; lower lr (now {config.lr})")
        if step % config.check_every == 0 or step == config.steps:
            score = recall(model, check_tokens, labels_of[check_facts])
    return {"steps": step, "loss": loss, "train_recall": score}


def fresh_permutation(num_facts: int, seed: int) -> np.ndarray:
    """The 'new facts' of the usability test: a random permutation independent of the fact set's."""
    return np.random.default_rng([seed, 41]).permutation(num_facts)


def pretrain_attention(factset: FactSet, config: AttentionConfig, *, num_junk: int = 9, norm_scale: float = 1.0,
                       dtype: torch.dtype = torch.float64, decode: str = "vocab") -> tuple[RecallTransformer, dict]:
    """Schedule (b), first half: attention trained with an identity MLP on the copy task (label = the
    fact token itself, unembedding tied to the input embedding), so it learns to fetch the key."""
    vocab = make_vocab(factset, num_junk, config.seed).tied()
    model = RecallTransformer(vocab, nn.Identity(), norm_scale=norm_scale, seed=config.seed, dtype=dtype,
                              decode=decode)
    stats = train_attention(model, np.arange(factset.num_facts), config)
    return model, stats


@torch.no_grad()
def usability(model: RecallTransformer, factset: FactSet, mlp_accuracy: float | None = None, *,
              eps: tuple[float, ...] = (0.05, 0.1, 0.2), repeats: int = 4, junk_len: int = 9,
              seed: int = 0, jacobians: bool = True, jacobian_keys: int = 128) -> dict:
    """Recall inside the Transformer and what predicts it, as flat columns.

    ``model`` holds the MLP for ``factset`` (its mapping is the label). Columns: ``recall`` (every
    fact ``repeats`` times with fresh junk); ``recall_exact_key`` (the MLP fed norm(k_i), i.e. perfect
    attention); ``attn_error_mean/max`` (the attention noise floor ‖norm(attn) − k_i‖ over the same
    rows) and ``attn_key_weight_min`` (smallest attention weight on the fact token, summed over its
    positions); ``recall_eps_<ε>`` (perfect attention plus query noise: norm(k_i + ε‖k_i‖u_i));
    ``margin_min`` / ``margin_mean`` (γ of the MLP on the keys, over the fact values);
    ``lipschitz_bound`` (an upper bound on the ball of the keys' radius) and ``jacobian_norm_max`` /
    ``jacobian_norm_mean`` (‖J‖₂ at the first ``jacobian_keys`` keys, exact, closed form; the keys are
    random, so a sample) and ``jacobian_rel_max`` (max ‖J(k_i)‖·‖k_i‖/‖g(k_i)‖,
    the scale-free stretch that decoding sees); ``noise_radius`` = γ_min / that stretch, a first-order
    estimate (up to a constant) of the query error decoding tolerates; ``noise_scale`` = √(d/(F log F)), the revised
    paper's tolerable query error.
    """
    vocab, mlp = model.vocab, model.mlp
    labels_of = torch.as_tensor(factset.mapping, dtype=torch.long)
    tokens, facts = eval_tokens(vocab, junk_len, repeats, seed + 2)
    keys = model.embed[facts]
    attended = model.attend(tokens)
    error = (model.norm(attended) - model.norm(keys)).norm(dim=1)
    x = model.embed[tokens]
    q = x[:, -1] @ model.wq.T
    weights = torch.softmax(torch.einsum("btd,bd->bt", x @ model.wk.T, q) / math.sqrt(model.d), dim=1)
    key_weight = (weights * (tokens == facts[:, None])).sum(dim=1)
    labels = labels_of[facts]
    row = {
        "recall": float((model.head(attended).argmax(dim=1) == labels).double().mean()),
        "recall_exact_key": float((model.head(keys).argmax(dim=1) == labels).double().mean()),
        "attn_error_mean": float(error.mean()), "attn_error_max": float(error.max()),
        "attn_key_weight_min": float(key_weight.min()),
        "noise_scale": math.sqrt(factset.d / (factset.num_facts * math.log(factset.num_facts))),
    }
    all_keys = model.embed[: factset.num_facts]
    u = torch.as_tensor(noise_directions(factset.num_facts, factset.d, seed), dtype=all_keys.dtype)
    scale = all_keys.norm(dim=1, keepdim=True)
    for e in eps:
        hit = model.head(all_keys + e * scale * u).argmax(dim=1) == labels_of
        row[f"recall_eps_{e:g}".replace(".", "p")] = float(hit.double().mean())
    if mlp_accuracy is not None:
        row["mlp_accuracy"] = mlp_accuracy
    if isinstance(mlp, nn.Identity):
        return row
    normed = model.norm(all_keys).cpu().double().numpy()
    gamma = margins(mlp, FactSet(normed, factset.values, factset.mapping))
    row.update(margin_min=float(gamma.min()), margin_mean=float(gamma.mean()))
    if jacobians and isinstance(mlp, GatedMLP):
        radius = float(np.linalg.norm(normed, axis=1).max())
        row["lipschitz_bound"] = lipschitz_bound(mlp, radius)
        sample = normed[:jacobian_keys]
        norms = jacobian_norms(mlp, sample)
        out_norms = mlp(torch.as_tensor(sample, dtype=all_keys.dtype)).norm(dim=1).double().numpy()
        row.update(jacobian_norm_max=float(norms.max()), jacobian_norm_mean=float(norms.mean()),
                   jacobian_rel_max=float(np.max(norms * radius / np.maximum(out_norms, 1e-300))))
        row["noise_radius"] = row["margin_min"] / row["jacobian_rel_max"]
    return row
