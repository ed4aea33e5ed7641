"""The encoder–decoder construction (docs/science.md#encoder_decoder, reconstructed; design and proof in
docs/construction.md).

Decoder: a Johnson–Lindenstrauss projection. Value j gets the code z_j = P u_j ∈ R^c (P = the first
c rows of a random rotation, scaled; u_j = v_j or the ρ-optimal u_j*), and the decoder is Pᵀ, so an
encoder that outputs z_f(i) for key i makes the MLP output PᵀP u_f(i), which decodes to f(i) once the
projection's distortion is below the margin. ``code_dim`` 0 picks the smallest c for which the
code table itself decodes every fact with normalised margin ≥ ``code_margin``.

Encoder: keys are randomly partitioned into buckets; each bucket owns a gadget of ReLU-gated units
whose gate row is solved to equal 1 on the bucket's keys (so the gadget fires mainly for its bucket)
and whose up rows are solved so the encoder outputs exactly the designed code for every key:
- solve="global" (default): one unit per (bucket, code coordinate); every gadget writes all c
  coordinates and the up rows of all gadgets come from one linear system that also cancels the
  cross-talk of gadgets firing off their bucket. Exact once buckets·d ≥ F (b ≤ d keys per bucket),
  so m = c·(⌈F/d⌉ + 1) units (``design_width``: one spare bucket keeps every bucket's system
  non-square) and W ≈ F·c·(2 + (c+1)/d): O(F log F / ρ²).
  Cost O(F³) (a Cholesky of the F×F Gram matrix; device="auto" runs it on a GPU if present).
- solve="local": each gadget is exact on its own bucket and isolated from all other keys by its
  gate threshold (a tiny bucket, default one key, fits under a threshold no other key reaches), so
  no global solve is needed: O(F²·d) time (one scan for intruders), but one unit per key:
  W = F·(2d + c + 1) + c·d. Isolation holds for buckets of b ≲ d/(2 ln F) keys, far below c.
variant="fit" is the gradient-based variant: the same fixed codes and decoder, the encoder (bilinear,
width m) fitted by Adam, with cross-entropy through the fixed decoder ("ce") or squared error onto
the codes ("mse").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from factmlp.device import resolve_device
from factmlp.factsets import FactSet, whitener
from factmlp.mlp import GatedMLP
from factmlp.options import Method, Options, ParamError, Whitened, option

VARIANTS = ("closed", "fit")
SOLVES = ("global", "local")
GATES = ("bucket", "random", "bilinear")
CODES = ("auto", "v", "ustar")
FIT_LOSSES = ("ce", "mse")


@dataclass(frozen=True)
class Codebook:
    """Codes z_j = P u_j (M×c, one per value), projection P (c×d) and decoder (d×c)."""

    codes: np.ndarray
    projection: np.ndarray
    decoder: np.ndarray

    @property
    def dim(self) -> int:
        return self.codes.shape[1]


def _rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng([seed, 23]).standard_normal((d, d)))
    return q.T * np.sign(np.diag(r))[:, None]  # rows: a Haar-random orthonormal basis


def code_margins(codes: np.ndarray, decoder: np.ndarray, scored: np.ndarray, targets: np.ndarray,
                 chunk: int = 2048, stop_below: float | None = None) -> np.ndarray:
    """Normalised decode margin of each target value's own code: output y = decoder·z_j must score
    v_j highest; ``scored`` = P ṽ_k for every value k (scores differ from <y, v_k> by a constant).
    With ``stop_below`` set, stops after the first chunk whose smallest margin is below it."""
    out = []
    scored32 = scored.astype(np.float32)  # margins are compared with thresholds ≥ 1e-3: float32 is ample
    for start in range(0, len(targets), chunk):
        rows = targets[start:start + chunk]
        z = codes[rows]
        s = z.astype(np.float32) @ scored32.T
        own = s[np.arange(len(rows)), rows].copy()
        s[np.arange(len(rows)), rows] = -np.inf
        norm = np.linalg.norm(z @ decoder.T, axis=1)
        out.append((own - s.max(axis=1)) / np.maximum(norm, 1e-300))
        if stop_below is not None and out[-1].min() < stop_below:
            break
    return np.concatenate(out)


def codebook(factset: FactSet, *, code_dim: int | None = None, codes: str = "auto", whiten: bool = False,
             code_margin: float = 0.01, seed: int = 0) -> Codebook:
    """The JL code table and decoder; ``code_dim=None`` searches the smallest adequate c ≤ d.

    codes: "v" (u_j = v_j, or ṽ_j), "ustar" (the ρ-optimal directions u_j* of factmlp.decodability),
    "auto": v when some c ≤ d makes the v-codes adequate, else u* (e.g. Gaussian values whose
    short rows lose to longer neighbours even uncompressed).
    whiten: codes are built from ṽ = Σ^{-1/2}(v − μ) and the decoder is Σ^{-1/2} Pᵀ, so scores are
    <z, P ṽ_k> + const: decoding in the whitened geometry. That needs fewer code dims for linearly
    anisotropic values (condition number), but more for spiked-then-renormalised ones (measured).
    """
    if codes not in CODES:
        raise ParamError("codes", f"got {codes!r}; allowed: {', '.join(CODES)}")
    values = np.asarray(factset.values, dtype=np.float64)
    d = factset.d
    if whiten:
        w, mean = whitener(values)
        geometry = (values - mean) @ w
    else:
        w, geometry = np.eye(d), values
    targets = np.unique(factset.mapping)
    rotation = _rotation(d, seed)
    tables = {"v": geometry}

    def directions(kind: str) -> np.ndarray:
        if kind not in tables:
            from factmlp.decodability import decodability  # lazy: only the u* codes need it

            tables[kind] = decodability(geometry).directions
        return tables[kind]

    def table(c: int, kind: str) -> Codebook:
        p = rotation[:c] * math.sqrt(d / c)
        return Codebook(directions(kind) @ p.T, p, w @ p.T)

    def adequate(c: int, kind: str) -> bool:
        book = table(c, kind)
        scored = geometry @ book.projection.T
        return bool(code_margins(book.codes, book.decoder, scored, targets, stop_below=code_margin).min()
                    >= code_margin)

    if code_dim is not None:
        if isinstance(code_dim, bool) or not isinstance(code_dim, (int, np.integer)) or not 1 <= code_dim <= d:
            raise ParamError("code_dim", f"got {code_dim!r}; allowed: an integer in [1, d={d}] or None")
        if codes == "auto":
            codes = "v" if adequate(d, "v") else "ustar"
        return table(int(code_dim), codes)
    for kind in (("v", "ustar") if codes == "auto" else (codes,)):
        c = _smallest(lambda c: adequate(c, kind), d, guess=round(3 * math.log2(max(len(values), 2))))
        if c is not None:
            return table(c, kind)
    return table(d, "ustar" if codes == "auto" else codes)  # nothing adequate: uncompressed codes


def _smallest(ok, high: int, guess: int) -> int | None:
    """Smallest c in [1, high] with ok(c), assuming monotone; None if ok(high) fails. Gallops from
    the guess in steps of 2 (a failing check exits early, so failures are cheap) then settles ±1."""
    c = min(max(guess, 1), high)
    if ok(c):
        while c > 2 and ok(c - 2):
            c -= 2
        return c - 1 if c > 1 and ok(c - 1) else c
    while c < high:
        c = min(c + 2, high)
        if ok(c):
            return c - 1 if ok(c - 1) else c
    return None


def _gate_rows(keys: np.ndarray, buckets: list[np.ndarray]) -> np.ndarray:
    """Min-norm g with g·k = 1 for every key of the bucket (exact for b ≤ d generic keys).

    Buckets of equal size b ≤ d are solved together: g = K_Bᵀ (K_B K_Bᵀ)⁻¹ 1.
    """
    d = keys.shape[1]
    gates = np.empty((len(buckets), d))
    sizes = np.array([len(idx) for idx in buckets])
    for b in np.unique(sizes):
        which = np.flatnonzero(sizes == b)
        if b > d:
            for beta in which:
                gates[beta] = np.linalg.lstsq(keys[buckets[beta]], np.ones(b), rcond=None)[0]
            continue
        kb = keys[np.stack([buckets[beta] for beta in which])]  # n × b × d
        gram = kb @ kb.transpose(0, 2, 1)
        try:
            coef = np.linalg.solve(gram, np.ones((len(which), b, 1)))
        except np.linalg.LinAlgError:  # a degenerate bucket: fall back to least squares one by one
            coef = np.stack([np.linalg.lstsq(g, np.ones(b), rcond=None)[0][:, None] for g in gram])
        gates[which] = (kb.transpose(0, 2, 1) @ coef)[:, :, 0]
    return gates


def _isolating_gates(keys: np.ndarray, buckets: list[np.ndarray], *, target: float = 0.75,
                     rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Gate rows equal to 1 on their bucket and low elsewhere, and each row's reach (largest value
    on a key outside its bucket).

    Start from the min-norm row. A row whose reach is ≥ ``target`` is re-solved with its intruders
    (outside keys at ≥ target) added to the system with right-hand side 0, so it vanishes on them;
    the new row is kept only if its reach went down (pinning raises the norm, which can lift
    other keys), for a few rounds.
    """
    num_facts, d = keys.shape
    gates = _gate_rows(keys, buckets)
    owner = np.empty(num_facts, dtype=np.int64)
    for beta, idx in enumerate(buckets):
        owner[idx] = beta
    reach = np.full(len(buckets), -np.inf)
    keys32, gates32 = keys.astype(np.float32), gates.astype(np.float32)  # a scan: float32 suffices
    for start in range(0, num_facts, 2048):
        proj = keys32[start:start + 2048] @ gates32.T  # block of keys × buckets
        proj[np.arange(len(proj)), owner[start:start + 2048]] = -np.inf
        reach = np.maximum(reach, proj.max(axis=0))

    def outside(beta: int) -> np.ndarray:
        mask = np.ones(num_facts, dtype=bool)
        mask[buckets[beta]] = False
        return mask

    for beta in np.flatnonzero(reach >= target):
        mask = outside(beta)
        pinned = np.empty(0, dtype=np.int64)
        found = np.flatnonzero(mask & (keys @ gates[beta] >= target))
        for _ in range(rounds):
            pinned = np.union1d(pinned, found)
            if len(buckets[beta]) + len(pinned) > d:
                break
            system = keys[np.concatenate([buckets[beta], pinned])]
            rhs = np.r_[np.ones(len(buckets[beta])), np.zeros(len(pinned))]
            row = np.linalg.lstsq(system, rhs, rcond=None)[0]
            proj = keys @ row
            new_reach = proj[mask].max()
            if new_reach >= reach[beta]:
                break
            gates[beta], reach[beta] = row, new_reach
            found = np.flatnonzero(mask & (proj >= target))
            if new_reach < target:
                break
    return gates, reach


def _buckets(num_facts: int, num_buckets: int, seed: int) -> list[np.ndarray]:
    """A random partition that depends on (seed, bucket count) only, so widths giving the same
    bucket count give the same MLP and the minimum-width search sees a monotone staircase."""
    perm = np.random.default_rng([seed, num_buckets, 29]).permutation(num_facts)
    return np.array_split(perm, num_buckets)


def _solve_psd(a: torch.Tensor, rhs: torch.Tensor, ridge: float) -> torch.Tensor:
    """(A + λ·mean diag·I)⁻¹ rhs by Cholesky, with growing jitter if A is numerically singular (A is changed)."""
    scale = float(a.diagonal().mean()) or 1.0
    added = 0.0
    for jitter in (ridge, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4):  # on the diagonal in place: no F×F copy
        a.diagonal().add_((jitter - added) * scale)
        added = jitter
        factor, info = torch.linalg.cholesky_ex(a)
        if int(info) == 0:
            return torch.cholesky_solve(rhs, factor)
    return torch.linalg.lstsq(a, rhs).solution


def _global_encoder(keys: np.ndarray, target_codes: np.ndarray, width: int, *, seed: int, gate: str,
                    threshold: float | None, bucket_size: int | None, ridge: float, device: str):
    """Gadgets of c units (one per code coordinate) and one exact linear solve for all up rows.

    Unit (β, r) computes (u_βr·x)·σ(g_β·x − θ) and writes coordinate r. For coordinate r the code of
    key i is Σ_β s_β(k_i) (u_βr·k_i) = (M x_r)_i with M = [diag(s_β) K]_β (F × buckets·d), the same
    M for every r. The min-norm solution x_r = Mᵀ y_r with (M Mᵀ) y_r = z_r needs only the F×F
    matrix M Mᵀ = (S Sᵀ) ⊙ (K Kᵀ); it is exact when M has full row rank (buckets·d ≥ F).
    """
    num_facts, d = keys.shape
    c = target_codes.shape[1]
    num_buckets = max(1, min(num_facts, width // c))
    if bucket_size is not None:
        num_buckets = min(num_buckets, max(1, math.ceil(num_facts / bucket_size)))
    buckets = _buckets(num_facts, num_buckets, seed)
    if gate == "random":
        rng = np.random.default_rng([seed, num_buckets, 31])
        gates = rng.standard_normal((num_buckets, d)) / math.sqrt(np.mean(np.sum(keys ** 2, axis=1)))
        theta = 0.0 if threshold is None else threshold
    else:
        gates = _gate_rows(keys, buckets)
        theta = 0.5 if threshold is None else threshold
    if gate == "bilinear":
        theta = 0.0
    dev = resolve_device(device)
    k = torch.as_tensor(keys, dtype=torch.float64, device=dev)
    pre = k @ torch.as_tensor(gates, dtype=torch.float64, device=dev).T - theta
    s = pre if gate == "bilinear" else torch.relu(pre)  # F × buckets
    a = s @ s.T
    for start in range(0, num_facts, 2048):  # A = (S Sᵀ) ⊙ (K Kᵀ), one row block at a time
        a[start:start + 2048] *= k[start:start + 2048] @ k.T
    y = _solve_psd(a, torch.as_tensor(target_codes, dtype=torch.float64, device=dev), ridge)  # F × c
    del a
    up = torch.empty(num_buckets, c, d, dtype=torch.float64, device=dev)
    for start in range(0, num_buckets, 16):
        block = s[:, start:start + 16]
        up[start:start + 16] = torch.einsum("ib,ir,id->brd", block, y, k)
    units = min(width, num_buckets * c)
    up = up.reshape(-1, d)[:units].cpu().numpy()
    gate_rows = np.repeat(gates, c, axis=0)[:units]
    down = np.zeros((c, units))
    down[np.arange(units) % c, np.arange(units)] = 1.0
    bias = None if gate == "bilinear" else np.full(units, -theta)
    return up, gate_rows, down, bias, ("bilinear" if gate == "bilinear" else "relu")


def _local_encoder(keys: np.ndarray, target_codes: np.ndarray, width: int, *, seed: int,
                   threshold: float | None, units_per_bucket: int | None, bucket_size: int | None):
    """Isolated gadgets: bucket β (b keys) gets p units that fire only where g_β·x > θ_β.

    g_β·k = 1 on the bucket and g_β·k = 0 on the few other keys it would otherwise reach
    (``_isolating_gates``); θ_β (auto) sits halfway between 1 and the largest g_β·k over all other
    keys, so other keys give exactly zero. On the bucket the gadget is the linear map E U k·(1−θ),
    so with p ≥ b units it reproduces the b codes exactly (U = dual basis of the bucket's keys,
    E = the codes); with p < b it writes their best rank-p approximation.
    """
    num_facts, d = keys.shape
    c = target_codes.shape[1]
    p = 1 if units_per_bucket is None else units_per_bucket
    num_buckets = max(1, min(num_facts, width // p))
    if bucket_size is not None:
        num_buckets = min(num_buckets, max(1, math.ceil(num_facts / bucket_size)))
    p = min(p, width)
    buckets = _buckets(num_facts, num_buckets, seed)
    gates, reach = _isolating_gates(keys, buckets)
    if threshold is None:
        thetas = (1.0 + np.minimum(reach, 1.0 - 2e-3)) / 2
    else:
        thetas = np.full(num_buckets, float(threshold))
    up = np.zeros((num_buckets, p, d))
    down = np.zeros((c, num_buckets, p))
    sizes = np.array([len(idx) for idx in buckets])
    for b in np.unique(sizes):
        which = np.flatnonzero(sizes == b)
        members = np.stack([buckets[beta] for beta in which])  # n × b
        kb = keys[members]  # n × b × d
        on = np.maximum(np.einsum("nbd,nd->nb", kb, gates[which]) - thetas[which, None], 1e-12)
        want = target_codes[members] / on[:, :, None]  # n × b × c: E U k_j must equal z_j / s_j
        dual = np.linalg.pinv(kb)  # n × d × b: columns r with r·k_j = δ_rj (b ≤ d)
        if b <= p:
            up[which, :b] = dual.transpose(0, 2, 1)
            down[:, which, :b] = want.transpose(2, 0, 1)
            continue
        q, sv, rt = np.linalg.svd(want.transpose(0, 2, 1), full_matrices=False)  # c × b per bucket
        rank = min(p, sv.shape[1])
        up[which, :rank] = rt[:, :rank] @ dual.transpose(0, 2, 1)
        down[:, which, :rank] = (q[:, :, :rank] * sv[:, None, :rank]).transpose(1, 0, 2)
    up, down = up.reshape(num_buckets * p, d), down.reshape(c, num_buckets * p)
    return up, np.repeat(gates, p, axis=0), down, -np.repeat(thetas, p), "relu"


def _fit_encoder(keys: np.ndarray, book: Codebook, factset: FactSet, width: int, *, seed: int, loss: str,
                 epochs: int, lr: float, device: str):
    """Adam on the encoder (bilinear, no bias) with the codes and decoder fixed; float32 like GD."""
    dev = resolve_device(device)
    d, c = factset.d, book.dim
    gen = torch.Generator().manual_seed(seed * 1_000_003 + width)

    def uniform(shape, fan_in):
        return ((torch.rand(shape, generator=gen) * 2 - 1) / math.sqrt(fan_in)).to(dev).requires_grad_(True)

    up, gate, down = uniform((width, d), d), uniform((width, d), d), uniform((c, width), width)
    k = torch.as_tensor(keys, dtype=torch.float32, device=dev)
    target = torch.as_tensor(factset.mapping, device=dev)
    readout = goal = None
    if loss == "ce":  # logits <decoder·h, v_k> = h·(V decoder)_k
        readout = torch.as_tensor(factset.values @ book.decoder, dtype=torch.float32, device=dev)
    else:
        goal = torch.as_tensor(book.codes[factset.mapping], dtype=torch.float32, device=dev)
    threads = torch.get_num_threads()
    if dev.type == "cpu" and len(keys) * width * d < 50_000_000:
        torch.set_num_threads(1)  # small steps: thread hand-offs cost more than they save (7x measured)
    try:
        return _adam(k, up, gate, down, target, readout, goal, epochs, lr)
    finally:
        torch.set_num_threads(threads)


def _adam(k, up, gate, down, target, readout, goal, epochs: int, lr: float):
    """Full-batch Adam, cosine schedule; CE (readout set) stops once every fact decodes."""
    opt = torch.optim.Adam([up, gate, down], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=lr * 1e-3)
    for epoch in range(epochs):
        h = ((k @ up.T) * (k @ gate.T)) @ down.T
        if readout is not None:
            logits = h @ readout.T
            objective = torch.nn.functional.cross_entropy(logits, target)
        else:
            objective = ((h - goal) ** 2).sum(dim=1).mean()
        opt.zero_grad()
        objective.backward()
        opt.step()
        sched.step()
        if epoch % 25 == 24 and readout is not None:
            with torch.no_grad():  # stop once every fact decodes with room to spare
                own = logits.gather(1, target[:, None])[:, 0]
                logits.scatter_(1, target[:, None], -torch.inf)
                if bool((own - logits.max(dim=1).values > 1e-3 * own.abs().clamp_min(1.0)).all()):
                    break
    as64 = lambda t: t.detach().cpu().double().numpy()
    return as64(up), as64(gate), as64(down), None, "bilinear"


@dataclass(frozen=True)
class EncoderDecoderOptions(Options):
    """The design's knobs (module docstring); 0 or a negative value means the design's default.

    ``device``: where the global solve runs ('auto': a GPU when there is one). ``solve_ridge``: the
    jitter, relative to the mean diagonal, that keeps the global solve's Cholesky factorable.
    """

    variant: str = option("closed", "closed form or gradient fit of the encoder", choices=VARIANTS)
    solve: str = option("global", "closed form: one global solve (fewest params) or isolated gadgets (fast)",
                        choices=SOLVES)
    code_dim: int = option(0, "code dimension c; 0 = smallest adequate c <= d", low=0)
    codes: str = option("auto", "code directions v, the rho-optimal u*, or auto", choices=CODES)
    code_margin: float = option(0.01, "margin the code table must decode with", low=0.0, high=1.0)
    code_whiten: bool = option(False, "codes and decoder in the whitened value geometry")
    gate: str = option("bucket", "gate form", choices=GATES)
    gate_threshold: float = option(-1.0, "gate threshold θ; negative = the design's default")
    bucket_size: int = option(0, "keys per bucket; 0 = as the width allows", low=0)
    units_per_bucket: int = option(0, "local solve: units per gadget; 0 = 1", low=0)
    fit_loss: str = option("ce", "fit: cross-entropy through the decoder or squared error onto codes",
                           choices=FIT_LOSSES)
    fit_epochs: int = option(2000, "fit: Adam epochs", low=1)
    fit_lr: float = option(1e-2, "fit: Adam learning rate", low=0.0, low_open=True)
    device: str = "cpu"
    solve_ridge: float = 1e-14

    def __post_init__(self):
        super().__post_init__()
        if self.variant == "closed" and self.solve == "global" and self.units_per_bucket:
            raise ParamError("units_per_bucket", "solve='global' uses exactly one unit per code coordinate "
                             "(c per bucket); allowed: 0, or solve='local' (set code_dim to size the gadgets)")
        if self.variant == "closed" and self.solve == "local" and self.gate != "bucket":
            raise ParamError("gate", f"got {self.gate!r} with solve='local'; allowed: bucket (isolation needs a "
                             "thresholded gate solved on the bucket)")


def encoder_decoder(factset: FactSet, width: int, *, seed: int = 0,
                    options: EncoderDecoderOptions = EncoderDecoderOptions()) -> GatedMLP:
    """Encoder d→m→c (gated) plus a fixed JL decoder c→d; see the module docstring for the knobs.

    width m: closed/global uses ⌊m/c⌋ buckets of c units; closed/local ⌊m/p⌋ buckets of p units
    (p = units_per_bucket, default 1); fit uses all m units. Only units that are built are counted:
    W = units·(2d + c) + units (gate biases, ReLU gates) + c·d.
    """
    o = options
    threshold = None if o.gate_threshold < 0 else o.gate_threshold
    bucket_size = o.bucket_size or None
    keys = np.asarray(factset.keys, dtype=np.float64)
    book = codebook(factset, code_dim=o.code_dim or None, codes=o.codes, whiten=o.code_whiten,
                    code_margin=o.code_margin, seed=seed)
    target_codes = book.codes[factset.mapping]
    if o.variant == "fit":
        parts = _fit_encoder(keys, book, factset, width, seed=seed, loss=o.fit_loss, epochs=o.fit_epochs,
                             lr=o.fit_lr, device=o.device)
    elif o.solve == "global":
        parts = _global_encoder(keys, target_codes, width, seed=seed, gate=o.gate, threshold=threshold,
                                bucket_size=bucket_size, ridge=o.solve_ridge, device=o.device)
    else:
        parts = _local_encoder(keys, target_codes, width, seed=seed, threshold=threshold,
                               units_per_bucket=o.units_per_bucket or None, bucket_size=bucket_size)
    up, gate_rows, down, gate_bias, activation = parts
    t = lambda x: None if x is None else torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)
    return GatedMLP(t(up), t(gate_rows), t(down), decoder=t(book.decoder), gate_bias=t(gate_bias),
                    activation=activation)


# How the Transformer studies whiten this construction: its codes, in the whitened value geometry.
def design_width(factset: FactSet, options: EncoderDecoderOptions = EncoderDecoderOptions(), seed: int = 0) -> int:
    """The width at which the closed form stores every fact of a generic fact set.

    global: c·(⌈F/d⌉ + 1) units, one bucket more than buckets·d ≥ F needs, so that no bucket's
    system is square (with exactly d keys in a bucket the solve is exact in theory but so badly
    conditioned that 3 of 80 generic cases missed 1-2 facts at d = 32; one spare bucket stores all 80,
    tests/test_constructions.py). local: one gadget of p units per key, F·p.
    """
    if options.solve == "local":
        return factset.num_facts * (options.units_per_bucket or 1)
    c = options.code_dim or codebook(factset, codes=options.codes, whiten=options.code_whiten,
                                     code_margin=options.code_margin, seed=seed).dim
    return c * (math.ceil(factset.num_facts / factset.d) + 1)


ENCODER_DECODER = Method("encoder_decoder", encoder_decoder, EncoderDecoderOptions,
                         whitened=Whitened("encoder_decoder", {"code_whiten": True}))

METHODS = (ENCODER_DECODER,)
