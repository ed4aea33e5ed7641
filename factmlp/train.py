"""Gradient-descent MLPs, the reference for what training reaches (docs/science.md#the-gd-recipe).

``train_batched`` trains K models of different widths on one fact set at once. Weights are
zero-padded to the widest model (the zero rows stay exactly zero, so the padding is the mask), the
forward and backward passes are written by hand (a few matrix products and one fused attention
kernel per epoch, no autograd graph) and Adam runs per element, so each model follows the path it
would follow alone (up to float rounding) while one set of kernels serves all K. Models that reach
the loss target, or (with ``stop_at_accuracy``) whose outcome is decided (factmlp/early_stop.py),
are taken out of the batch at the next check, and the batch shrinks to the widest model still training.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from factmlp.adam import Adam
from factmlp.early_stop import EPOCHS, LOSS, OutcomeRule, deciding_margin
from factmlp.device import resolve_device
from factmlp.factsets import FactSet
from factmlp.mlp import ACTIVATION_DERIVATIVES, ACTIVATIONS, GatedMLP
from factmlp.options import Method, Options, option

# Logits held at once by default (512 MiB of float32), and on CPU the loss's smaller blocks, whose
# 256 KiB stay in L2 between the matmul and the softmax.
_LOGITS_BLOCK = 1 << 27
_CPU_LOSS_BLOCK = 1 << 16
_TINY = torch.finfo(torch.float32).tiny
MAX_EPOCHS = 1_000_000  # 100x the published recipe's 10k
MAX_LR = 10.0


@dataclass(frozen=True)
class TrainConfig(Options):
    """The GD recipe, one object for every experiment. Published defaults: Adam 1e-3, cosine to 1e-6
    over 10k full-batch epochs, stop at loss 1e-7, bilinear gate, no biases.

    The declared options are method gd's sweep parameters (``gd_epochs``, ``gd_lr``, ...). The plain
    fields are not: ``check_every`` (epochs between early-stop checks, the only host syncs on a GPU),
    Adam's constants, the init ``seed``, the ``device`` and ``logits_block`` (most logits, models ×
    facts × values, held in memory at once; 0 means 2^27: it bounds memory for large F and changes
    results only by float rounding). ``stop_at_accuracy``: when set, the early-stop rule of
    factmlp/early_stop.py also stops a model once it is decided whether its accuracy reaches this
    threshold (``stop_window`` and ``stop_safety`` are the rule's constants); None runs the full recipe.
    """

    # Upper bounds: far beyond any recipe, below what runs for ever (epochs) or overflows at once (lr).
    epochs: int = option(10_000, "full-batch epochs", low=1, high=MAX_EPOCHS)
    lr: float = option(1e-3, "Adam learning rate at the start of the cosine schedule", low=0.0, low_open=True,
                       high=MAX_LR)
    lr_min: float = option(1e-6, "learning rate at the end of the cosine schedule", low=0.0, high=MAX_LR)
    loss_stop: float = option(1e-7, "a model stops training once its loss is at most this", low=0.0)
    activation: str = option("bilinear", "the gate's activation", choices=tuple(ACTIVATIONS))
    bias: bool = option(False, "biases in both layers")
    check_every: int = 50
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    seed: int = 0
    device: str = "auto"
    logits_block: int = 0
    stop_at_accuracy: float | None = None
    stop_window: int = 5
    stop_safety: float = 2.0

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def lr_at(self, step: int) -> float:
        """Cosine schedule from ``lr`` at step 0 towards ``lr_min`` at step ``epochs``."""
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * step / self.epochs))


# The laptop recipe: the published one shortened to 3k epochs at lr 1e-2, which reaches the same
# minimum widths at laptop sizes (docs/science.md#the-gd-recipe). The default of the experiments that
# train GD inside a larger task (the Transformer studies, fact editing); study files that use it say
# so as `gd: {epochs: 3000, lr: 1.0e-2}`.
LAPTOP_RECIPE = TrainConfig(epochs=3000, lr=1e-2)


def _init(d: int, widths: list[int], config: TrainConfig) -> list[GatedMLP]:
    """Each model's init depends only on (seed, width), so batched and alone start identically."""
    return [
        GatedMLP.random(d, m, activation=config.activation, bias=config.bias,
                        generator=torch.Generator().manual_seed(config.seed * 1_000_003 + m))
        for m in widths
    ]


def _stack(models: list[GatedMLP], width: int, device) -> dict[str, torch.Tensor]:
    """Zero-pad every model to ``width`` hidden units and stack them, model axis ``MODEL_AXIS[name]``.

    Layout: ``upgate`` (2, K, m, d) holds every model's up rows then every gate row, so one matmul
    gives all hidden pre-activations with u and g each contiguous per fact; ``down_t`` (K, m, d) is
    the down projection transposed; biases ``hidden_bias`` (2, K, m) and ``out_bias`` (K, d).
    The padding is the mask: zero rows give hidden units that are exactly zero, whose gradients are
    then exactly zero, so they stay zero under Adam (a fixed point, tested).
    """
    def pad(t):
        return torch.cat([t.detach(), t.new_zeros((width - t.shape[0],) + tuple(t.shape[1:]))])
    params = {
        "upgate": torch.stack([torch.stack([pad(m.up) for m in models]), torch.stack([pad(m.gate) for m in models])]),
        "down_t": torch.stack([pad(m.down.T) for m in models]),
    }
    if models[0].up_bias is not None:
        params["hidden_bias"] = torch.stack([torch.stack([pad(m.up_bias) for m in models]),
                                             torch.stack([pad(m.gate_bias) for m in models])])
        params["out_bias"] = torch.stack([m.down_bias.detach() for m in models])
    return {k: v.to(device).contiguous() for k, v in params.items()}


MODEL_AXIS = {"upgate": 1, "hidden_bias": 1, "down_t": 0, "out_bias": 0}


def _blocks(num_models: int, num_facts: int, num_values: int, budget: int):
    """(model slice, fact slice) pairs covering K×F with at most ``budget`` logits each.

    Fact chunks depend only on (F, M, budget), never on K, so a model's sums over facts are
    grouped the same way whether it trains alone or in a batch.
    """
    facts = num_facts if num_facts * num_values <= budget else max(1, budget // num_values)
    models = max(1, budget // (facts * num_values)) if facts == num_facts else 1
    for k0 in range(0, num_models, models):
        for f0 in range(0, num_facts, facts):
            yield slice(k0, min(k0 + models, num_models)), slice(f0, min(f0 + facts, num_facts))


def _cross_entropy(y: torch.Tensor, values: torch.Tensor, targets: torch.Tensor, budget: int,
                   margins: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over facts of −log softmax(y·Vᵀ)[f(i)], per model, in blocks of at most ``budget`` logits.

    The target's probability is floored at the smallest float32, so a hopeless fact costs at most
    87 nats instead of inf; near zero the loss is as precise as torch's cross_entropy. ``margins``
    (models × facts), when given, receives each fact's logit margin from the same logits.
    """
    num_models, num_facts, d = y.shape
    right = torch.empty(num_models, num_facts, 1, device=y.device, dtype=y.dtype)
    for ks, fs in _blocks(num_models, num_facts, len(values), budget):
        kb, fb = ks.stop - ks.start, fs.stop - fs.start
        logits = (y[ks, fs].reshape(-1, d) @ values.T).view(kb, fb, -1)
        if margins is not None:
            where = targets[fs, None].expand(kb, fb, 1)
            target_logit = logits.gather(2, where)
            logits.scatter_(2, where, -torch.inf)
            torch.sub(target_logit[..., 0], logits.amax(dim=2), out=margins[ks, fs])
            logits.scatter_(2, where, target_logit)  # restored exactly: the loss is the same either way
        probs = torch.softmax(logits, dim=-1)
        torch.gather(probs, 2, targets[fs, None].expand(kb, fb, 1), out=right[ks, fs])
    return right.view(num_models, num_facts).clamp_min_(_TINY).log_().sum(dim=1).div_(-num_facts)


def _softmax_values(y: torch.Tensor, values: torch.Tensor, budget: int) -> torch.Tensor:
    """softmax(y·Vᵀ)·V for every model and fact: the cross-entropy gradient's only F×M part.

    It is attention with queries y and keys = values = V at scale 1, so the fused attention
    kernel computes it without writing the F×M probabilities to memory (flash-style on CPU,
    memory-efficient kernels on GPU). Queries go in chunks so that a kernel that does
    materialise them holds at most ``budget`` at once.
    """
    num_models, num_facts, d = y.shape
    out = torch.empty_like(y)
    for ks, fs in _blocks(num_models, num_facts, len(values), budget):
        kv = values[None, None].expand(ks.stop - ks.start, 1, len(values), d)
        out[ks, fs] = torch.nn.functional.scaled_dot_product_attention(y[ks, None, fs], kv, kv, scale=1.0)[:, 0]
    return out


def _loss_and_grads(p: dict[str, torch.Tensor], keys: torch.Tensor, values: torch.Tensor, targets: torch.Tensor,
                    target_values: torch.Tensor, activation: str, budget: int, *, need_loss: bool = True,
                    need_grads: bool = True, margins: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Mean cross-entropy of each model over all values (when ``need_loss``; the trainer asks only
    at checks) and its gradient w.r.t. every stacked tensor (when ``need_grads``). ``margins``: see
    ``_cross_entropy`` (filled with the loss).

    Forward: pre = keys·[U;G]ᵀ (+b), h = u ⊙ σ(g), y = h·Dᵀ (+b), logits = y·Vᵀ.
    Backward: ∂logits = (softmax − onehot)/F, so ∂y = (softmax(y·Vᵀ)·V − V_f)/F, then the chain
    rule by hand.
    """
    _, num_models, width, d = p["upgate"].shape
    num_facts = len(keys)
    pre = (keys @ p["upgate"].view(-1, d).T).view(num_facts, 2, num_models, width)
    if "hidden_bias" in p:
        pre += p["hidden_bias"]
    u, g = pre[:, 0], pre[:, 1]  # (F, K, m)
    s = ACTIVATIONS[activation](g)
    h = u * s
    y = torch.bmm(h.transpose(0, 1), p["down_t"])  # (K, F, d)
    if "out_bias" in p:
        y += p["out_bias"][:, None, :]
    loss_budget = min(budget, _CPU_LOSS_BLOCK) if y.device.type == "cpu" else budget
    loss = _cross_entropy(y, values, targets, loss_budget, margins) if need_loss else None
    if not need_grads:
        return loss, {}
    dy = _softmax_values(y, values, budget)
    dy -= target_values
    dy /= num_facts
    grads = {"down_t": torch.bmm(h.permute(1, 2, 0), dy)}
    dh = torch.bmm(dy, p["down_t"].transpose(1, 2)).transpose(0, 1)  # (F, K, m)
    dpre = torch.empty_like(pre)
    torch.mul(dh, s, out=dpre[:, 0])
    if activation == "bilinear":
        torch.mul(dh, u, out=dpre[:, 1])
    else:
        torch.mul(dh * u, ACTIVATION_DERIVATIVES[activation](g), out=dpre[:, 1])
    grads["upgate"] = (dpre.view(num_facts, -1).T @ keys).view(2, num_models, width, d)
    if "hidden_bias" in p:
        grads["hidden_bias"] = dpre.sum(dim=0)
        grads["out_bias"] = dy.sum(dim=1)
    return loss, grads


def autograd_reference(params: dict[str, torch.Tensor], keys: torch.Tensor, values: torch.Tensor,
                       targets: torch.Tensor, activation: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One model's loss and gradients written plainly and differentiated by torch autograd: the
    definition ``_loss_and_grads`` computes by hand for a whole stack (tests/test_train.py holds it to
    this). ``params``: the model's slice of the stacked tensors (``upgate`` 2×m×d, ``down_t`` m×d, and
    ``hidden_bias`` 2×m, ``out_bias`` d when there are biases); they are not modified."""
    q = {name: t.detach().clone().requires_grad_() for name, t in params.items()}
    u, g = keys @ q["upgate"][0].T, keys @ q["upgate"][1].T
    if "hidden_bias" in q:
        u, g = u + q["hidden_bias"][0], g + q["hidden_bias"][1]
    y = (u * ACTIVATIONS[activation](g)) @ q["down_t"]
    if "out_bias" in q:
        y = y + q["out_bias"]
    loss = torch.nn.functional.cross_entropy(y @ values.T, targets)
    loss.backward()
    return loss.detach(), {name: t.grad for name, t in q.items()}


def _select(p: dict[str, torch.Tensor], rows: torch.Tensor, width: int) -> dict[str, torch.Tensor]:
    """The stacked tensors of models ``rows``, cut to ``width`` hidden units (padding only is cut)."""
    out = {}
    for name, t in p.items():
        t = t.index_select(MODEL_AXIS[name], rows)
        if name != "out_bias":
            t = t.narrow(MODEL_AXIS[name] + 1, 0, width)
        out[name] = t.contiguous()
    return out


def _unstack(p: dict[str, torch.Tensor], k: int, width: int, activation: str) -> GatedMLP:
    """Model ``k`` of the stack as a GatedMLP on the CPU, padding removed."""
    take = {name: t.select(MODEL_AXIS[name], k).detach().cpu() for name, t in p.items()}
    biases = {}
    if "hidden_bias" in take:
        biases = dict(up_bias=take["hidden_bias"][0, :width].clone(), gate_bias=take["hidden_bias"][1, :width].clone(),
                      down_bias=take["out_bias"].clone())
    return GatedMLP(take["upgate"][0, :width].clone(), take["upgate"][1, :width].clone(),
                    take["down_t"][:width].T.contiguous(), activation=activation, **biases)


def train_batched(factset: FactSet, widths: list[int], config: TrainConfig = TrainConfig()) -> list[dict]:
    """Train one model per width with cross-entropy over all values; return per-model results.

    Each result holds the trained ``model`` (on CPU), its ``loss`` (mean cross-entropy of exactly
    the returned weights), ``epochs`` (Adam steps applied) and ``stop_reason`` (factmlp/early_stop.py:
    ``loss``, ``epochs``, or with ``stop_at_accuracy`` also ``stored`` / ``cannot_store``). A model
    stopped at a check (every ``check_every`` epochs) is returned as it was at that check.
    """
    if not widths or min(widths) < 1 or any(int(w) != w for w in widths):
        raise ValueError(f"widths must be positive integers, got {widths}")
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {config.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    if config.epochs < 1 or config.check_every < 1 or config.logits_block < 0:
        raise ValueError(f"need epochs >= 1, check_every >= 1 and logits_block >= 0, got {config.epochs}, "
                         f"{config.check_every}, {config.logits_block}")
    if config.stop_at_accuracy is not None and not 0 < config.stop_at_accuracy <= 1:
        raise ValueError(f"stop_at_accuracy must be in (0, 1] or None, got {config.stop_at_accuracy}")
    widths = [int(w) for w in widths]
    device = config.torch_device()
    budget = config.logits_block or _LOGITS_BLOCK
    keys = torch.as_tensor(factset.keys, dtype=torch.float32, device=device)
    values = torch.as_tensor(factset.values, dtype=torch.float32, device=device)
    targets = torch.as_tensor(factset.mapping, dtype=torch.long, device=device)
    target_values = values[targets]
    data = (keys, values, targets, target_values, config.activation, budget)

    ids = torch.arange(len(widths))  # which original model each batch row is (host side)
    width_of = torch.tensor(widths)
    p = _stack(_init(factset.d, widths, config), max(widths), device)
    adam = Adam(p, betas=(config.beta1, config.beta2), eps=config.eps)
    rule = None if config.stop_at_accuracy is None else OutcomeRule(
        len(widths), config.lr_at, config.epochs, window=config.stop_window, safety=config.stop_safety)
    done: dict[int, tuple[dict[str, torch.Tensor], float, int, str]] = {}

    def retire(rows: list[int], losses: torch.Tensor, epochs: int, reasons: list[str]):
        for r, reason in zip(rows, reasons):
            done[int(ids[r])] = ({k: v.narrow(MODEL_AXIS[k], r, 1).clone() for k, v in p.items()}, float(losses[r]),
                                 epochs, reason)

    for step in range(config.epochs):
        check = (step + 1) % config.check_every == 0
        margins = torch.empty(len(ids), factset.num_facts, device=device) if check and rule else None
        loss, grads = _loss_and_grads(p, *data, need_loss=check, margins=margins)
        if check:
            reasons = [LOSS if stop else None for stop in (loss <= config.loss_stop).tolist()]  # the host sync
            if rule is not None:
                decided = rule.observe(step, deciding_margin(margins, config.stop_at_accuracy))
                reasons = [r or why for r, why in zip(reasons, decided)]
            stopping = [r for r, why in enumerate(reasons) if why]
            if stopping:
                retire(stopping, loss.cpu(), step, [reasons[r] for r in stopping])
                going = [r for r, why in enumerate(reasons) if not why]
                if not going:
                    break
                rows = torch.tensor(going)
                width = int(width_of[ids[rows]].max())
                rows_dev = rows.to(device)
                p, grads = _select(p, rows_dev, width), _select(grads, rows_dev, width)
                adam.moments(lambda m: _select(m, rows_dev, width))
                ids = ids[rows]
                if rule is not None:
                    rule.keep(going)
        adam.step(p, grads, config.lr_at(step))
    else:
        loss, _ = _loss_and_grads(p, *data, need_grads=False)
        retire(list(range(len(ids))), loss.cpu(), config.epochs, [EPOCHS] * len(ids))

    results = []
    for k, m in enumerate(widths):
        params, loss_k, epochs, reason = done[k]
        results.append({"model": _unstack(params, 0, m, config.activation), "loss": loss_k, "epochs": epochs,
                        "stop_reason": reason})
    return results


def train_gd(factset: FactSet, width: int, config: TrainConfig = TrainConfig()) -> GatedMLP:
    """Train a single gated MLP of the given width (the batched trainer with K = 1)."""
    return train_batched(factset, [width], config)[0]["model"]


def _train_many(factset: FactSet, widths: list[int], *, seed: int, options: TrainConfig) -> list[tuple]:
    """Method gd: the models of all widths trained as one batch, each with its final loss and epochs run."""
    config = dataclasses.replace(options, seed=seed)
    trained = train_batched(factset, widths, config)
    for width, t in zip(widths, trained):
        if not math.isfinite(t["loss"]):
            raise FloatingPointError(f"GD loss is {t['loss']} at width {width}; lower gd_lr (now {config.lr})")
    return [(t["model"], {"loss": t["loss"], "epochs_run": t["epochs"], "stop_reason": t["stop_reason"]})
            for t in trained]


def _train(factset: FactSet, width: int, *, seed: int, options: TrainConfig) -> GatedMLP:
    return _train_many(factset, [width], seed=seed, options=options)[0][0]


GD = Method("gd", _train, TrainConfig, build_many=_train_many)
