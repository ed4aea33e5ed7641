"""Scoring a model on a fact set by dot-product decoding: argmax_j <g(k_i), v_j> must equal f(i).

Besides accuracy and margins, the usability metrics of docs/science.md#inside-a-transformer: the
directions of query noise, and how much the MLP can stretch a small move (a Lipschitz upper bound
over a ball, and the exact Jacobian spectral norm at the keys).
"""
from __future__ import annotations

import numpy as np
import torch

from factmlp.factsets import FactSet
from factmlp.mlp import ACTIVATION_DERIVATIVES, ACTIVATION_SLOPE_BOUNDS, ACTIVATIONS, GatedMLP


def _as_tensor(x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


@torch.no_grad()
def outputs(model: torch.nn.Module, keys: np.ndarray, chunk: int = 4096) -> torch.Tensor:
    """g(k_i) for every key, in the model's dtype, chunked to bound memory."""
    p = next(model.parameters())
    return torch.cat([model(_as_tensor(keys[i:i + chunk], p)) for i in range(0, len(keys), chunk)])


@torch.no_grad()
def margins(model: torch.nn.Module, factset: FactSet, chunk: int = 2048, *,
            queries: np.ndarray | None = None) -> np.ndarray:
    """γ_i = <ĝ_i, v_f(i)> − max_{j≠f(i)} <ĝ_i, v_j> with ĝ_i = g(q_i)/‖g(q_i)‖ (float64).

    queries: the inputs q_i (default the keys k_i), e.g. noisy keys; row i must decode to f(i).
    """
    queries = factset.keys if queries is None else queries
    if np.shape(queries) != factset.keys.shape:
        raise ValueError(f"queries have shape {np.shape(queries)}, expected the keys' {factset.keys.shape}")
    values = torch.as_tensor(factset.values, dtype=torch.float64)
    mapping = torch.as_tensor(factset.mapping)
    out = []
    for start in range(0, factset.num_facts, chunk):
        g = outputs(model, queries[start:start + chunk]).to("cpu", torch.float64)
        g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
        scores = g @ values.T
        rows = torch.arange(len(g))
        right = scores[rows, mapping[start:start + chunk]]
        scores[rows, mapping[start:start + chunk]] = -torch.inf
        out.append(right - scores.max(dim=1).values)
    return torch.cat(out).numpy()


def evaluate(model: torch.nn.Module, factset: FactSet) -> dict:
    """Accuracy (a key counts as stored when its margin is positive) and the margin statistics."""
    gamma = margins(model, factset)
    return {
        "accuracy": float(np.mean(gamma > 0)),
        "margin_min": float(gamma.min()),
        "margin_mean": float(gamma.mean()),
    }


def noise_directions(num: int, d: int, seed: int = 0) -> np.ndarray:
    """One random unit vector per key, a function of (num, d, seed) only."""
    u = np.random.default_rng([seed, 12]).standard_normal((num, d))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


@torch.no_grad()
def lipschitz_bound(model: GatedMLP, radius: float = 1.0) -> float:
    """An upper bound on the Lipschitz constant of the gated MLP on the ball ‖x‖ ≤ radius.

    With u = Ux + b_u, g = Gx + b_g and D the (effective) down projection, the Jacobian is
    J(x) = D [diag(σ(g)) U + diag(u ⊙ σ'(g)) G]. On the ball |g_j| ≤ Γ_j := r‖G_j‖ + |b_g,j| and
    |u_j| ≤ Υ_j := r‖U_j‖ + |b_u,j|; since |σ(z)| ≤ |z| for bilinear, silu and relu and |σ'| ≤ c,
    writing diag(σ(g)) = Γ^½ diag(σ(g)/Γ) Γ^½ with ‖diag(σ(g)/Γ)‖ ≤ 1 gives
        ‖J(x)‖ ≤ ‖D Γ^½‖·‖Γ^½ U‖ + c·‖D Υ^½‖·‖Υ^½ G‖      (spectral norms).
    The ball is convex, so this bounds ‖g(x) − g(y)‖/‖x − y‖ there (relu: almost everywhere
    differentiable, same bound). For bilinear models with no bias it scales as radius.
    """
    if model.activation not in ACTIVATION_SLOPE_BOUNDS:
        raise ValueError(f"no slope bound for activation {model.activation!r}")
    up, gate = model.up.double(), model.gate.double()
    down = model.effective_down().double()
    up_bias = torch.zeros(len(up), dtype=torch.float64) if model.up_bias is None else model.up_bias.double().abs()
    gate_bias = torch.zeros(len(up), dtype=torch.float64) if model.gate_bias is None else model.gate_bias.double().abs()
    gamma = (radius * gate.norm(dim=1) + gate_bias).sqrt()
    upsilon = (radius * up.norm(dim=1) + up_bias).sqrt()

    def norm(m: torch.Tensor) -> float:
        return float(torch.linalg.matrix_norm(m, ord=2))
    return (norm(down * gamma) * norm(gamma[:, None] * up)
            + ACTIVATION_SLOPE_BOUNDS[model.activation] * norm(down * upsilon) * norm(upsilon[:, None] * gate))


def jacobian_norms(model: torch.nn.Module, points: np.ndarray, *, chunk: int | None = None, method: str = "auto",
                   iterations: int = 200, tol: float = 1e-7, seed: int = 0) -> np.ndarray:
    """Spectral norm ‖J(x)‖₂ of the model's Jacobian at each point (one per row), chunked.

    method 'closed': a GatedMLP's Jacobian from its closed form (``_gated_jacobians``), one batched
    product per chunk of 16 points and no torch.func, whose first call costs seconds in every fresh
    worker; 'exact': full Jacobians of any model (torch.func.jacrev under vmap, chunks of 256) and
    their largest singular value; 'power': power iteration on JᵀJ with jvp/vjp, never forming J (an
    estimate from below that converges to the exact value; for large d); 'auto': closed for a
    GatedMLP, else exact when d ≤ 256, else power.
    """
    d = np.shape(points)[1]
    if method == "auto":
        method = "closed" if isinstance(model, GatedMLP) else "exact" if d <= 256 else "power"
    if method not in ("closed", "exact", "power"):
        raise ValueError(f"unknown method {method!r}; allowed: auto, closed, exact, power")
    if method == "closed":
        return _gated_jacobian_norms(model, points, chunk or 16)
    chunk = chunk or 256
    p = next(model.parameters())
    out = []
    for start in range(0, len(points), chunk):
        x = _as_tensor(points[start:start + chunk], p)
        if method == "exact":
            jac = torch.func.vmap(torch.func.jacrev(model))(x)
            out.append(torch.linalg.matrix_norm(jac.detach().double(), ord=2))
        else:
            out.append(_power_norms(model, x, iterations, tol, seed + start))
    return torch.cat(out).cpu().numpy()


@torch.no_grad()
def _gated_jacobian_norms(mlp: GatedMLP, points: np.ndarray, chunk: int) -> np.ndarray:
    """‖J(x)‖₂ from J(x) = D [diag(σ(g)) U + diag(u ⊙ σ'(g)) G] (u = Ux + b_u, g = Gx + b_g, D the
    effective down projection), in float64."""
    up, gate, down = mlp.up.double(), mlp.gate.double(), mlp.effective_down().double()
    x = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    out = []
    for start in range(0, len(x), chunk):
        xb = x[start:start + chunk]
        u, g = xb @ up.T, xb @ gate.T
        if mlp.up_bias is not None:
            u = u + mlp.up_bias.double()
        if mlp.gate_bias is not None:
            g = g + mlp.gate_bias.double()
        s, t = ACTIVATIONS[mlp.activation](g), u * ACTIVATION_DERIVATIVES[mlp.activation](g)
        inner = s[:, :, None] * up + t[:, :, None] * gate  # (B, m, d)
        out.append(torch.linalg.matrix_norm(down @ inner, ord=2))
    return torch.cat(out).numpy()


def _power_norms(model: torch.nn.Module, x: torch.Tensor, iterations: int, tol: float, seed: int) -> torch.Tensor:
    """Largest singular value of J(x_b) for each row b; the model must act on rows independently."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x)
    v = v / v.norm(dim=1, keepdim=True)
    _, pullback = torch.func.vjp(model, x)
    sigma = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for _ in range(iterations):
        _, jv = torch.func.jvp(model, (x,), (v,))
        (jtjv,) = pullback(jv)
        new = jv.detach().double().norm(dim=1)
        v = jtjv.detach() / jtjv.detach().norm(dim=1, keepdim=True).clamp_min(1e-300)
        converged = bool(((new - sigma).abs() <= tol * new).all())
        sigma = new
        if converged:
            break
    return sigma
