"""Scoring a model on a fact set by dot-product decoding: argmax_j <g(k_i), v_j> must equal f(i).

Besides accuracy and margins, the usability metrics of SCIENCE.md §8: how far a query may move
before decoding breaks (accuracy under query noise) and how much the MLP can stretch a small move
(a Lipschitz upper bound over a ball, and the exact Jacobian spectral norm at the keys).
"""
from __future__ import annotations

import numpy as np
import torch

from factmlp.factsets import FactSet
from factmlp.mlp import ACTIVATION_SLOPE_BOUNDS, GatedMLP


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


def noise_accuracy(model: torch.nn.Module, factset: FactSet, eps: list[float], seed: int = 0) -> dict[float, float]:
    """Accuracy when key i is queried at k_i + ε·u_i, u_i a seeded random unit vector.

    The same directions serve every ε, so the curve differs between ε only through ε.
    """
    u = noise_directions(factset.num_facts, factset.d, seed)
    return {float(e): float(np.mean(margins(model, factset, queries=factset.keys + e * u) > 0)) for e in eps}


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


def jacobian_norms(model: torch.nn.Module, points: np.ndarray, *, chunk: int = 256, method: str = "auto",
                   iterations: int = 200, tol: float = 1e-7, seed: int = 0) -> np.ndarray:
    """Spectral norm ‖J(x)‖₂ of the model's Jacobian at each point (one per row), chunked.

    method 'exact': full Jacobians (torch.func.jacrev under vmap) and their largest singular value;
    'power': power iteration on JᵀJ with jvp/vjp, never forming J (an estimate from below that
    converges to the exact value; for large d); 'auto': exact when d ≤ 256.
    """
    d = np.shape(points)[1]
    method = ("exact" if d <= 256 else "power") if method == "auto" else method
    if method not in ("exact", "power"):
        raise ValueError(f"unknown method {method!r}; allowed: auto, exact, power")
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


def robustness(model: GatedMLP, factset: FactSet, eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.5),
               seed: int = 0) -> dict:
    """Usability metrics as flat columns: Lipschitz bound on the ball holding every key, the largest
    and mean Jacobian norm at the keys, and ``accuracy_eps_<ε>`` ('.' written 'p') per noise level."""
    radius = float(np.linalg.norm(factset.keys, axis=1).max())
    norms = jacobian_norms(model, factset.keys)
    row = {"lipschitz_bound": lipschitz_bound(model, radius), "lipschitz_radius": radius,
           "jacobian_norm_max": float(norms.max()), "jacobian_norm_mean": float(norms.mean())}
    for e, acc in noise_accuracy(model, factset, list(eps), seed).items():
        row[f"accuracy_eps_{e:g}".replace(".", "p")] = acc
    return row
