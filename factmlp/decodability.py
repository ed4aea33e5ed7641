"""Decodability ρ of a value table (docs/science.md#decodability): how well one unit direction per value separates
it from every other value under dot-product decoding.

ρ_i is the distance from the origin to conv{d_ij = (v_i − v_j)/‖v_i − v_j‖ : j ≠ i}; the min-norm
point x_i gives the best decoding direction u_i* = x_i/‖x_i‖. Solving all F−1 constraints per value
is O(F²d) per iteration, so per block of values we (1) screen a few likely-active competitors,
(2) solve those small min-norm-point problems exactly and batched (Wolfe's algorithm in weight
space), (3) certify u_i against ALL values with one matrix product, add the violators and re-solve.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factmlp.factsets import FactSet

_RIDGE = 1e-12  # keeps KKT systems solvable if a corral is numerically affinely dependent
_ROUGH = 1e-2  # first solve per block only has to point at the violators, so it stops early


@dataclass(frozen=True)
class Decodability:
    """Certified result. rho_per_value[i] is the margin min_{j≠i} <directions[i], d_ij> attained
    against all values (a lower bound on ρ_i); the exact ρ_i is at most `gap` above it."""
    rho: float
    rho_per_value: np.ndarray
    directions: np.ndarray
    gap: float


def _as_table(values, *, distinct: bool) -> np.ndarray:
    """The value table as float64; a FactSet gives its values (ρ is a property of the values)."""
    V = np.asarray(values.values if isinstance(values, FactSet) else values, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] < 2:
        raise ValueError(f"values must be a 2-D array with at least 2 rows, got shape {V.shape}")
    if not np.isfinite(V).all():
        raise ValueError("values contain NaN or inf")
    if distinct:
        _, inv, counts = np.unique(V, axis=0, return_inverse=True, return_counts=True)
        if (counts > 1).any():
            groups = [np.flatnonzero(inv.ravel() == g).tolist() for g in np.flatnonzero(counts > 1)]
            raise ValueError(f"duplicate value rows {groups[:10]}: v_i == v_j leaves the "
                             "normalised difference (v_i - v_j)/|v_i - v_j| undefined")
    return V


def _screen(V: np.ndarray, sq: np.ndarray, rows: np.ndarray):
    """Distances ‖v_i − v_j‖ and scores <v_i/‖v_i‖, d_ij> for a block of rows (self: inf), and the
    near-duplicate pairs (block position, column) whose values were recomputed from the vectors.

    The score is each constraint's value at the natural guess u = v̂_i, so the smallest scores are
    the constraints most likely active; for unit rows it is ‖v_i − v_j‖/2 (nearest neighbours),
    but unlike plain distance it stays meaningful when norms differ. Gram-based distances cancel
    when ‖v_i − v_j‖² < 1e-6 ‖v_i‖², so those (rare) pairs are computed directly.
    """
    r = np.arange(len(rows))
    G = V[rows] @ V.T
    D = np.multiply(G, -2.0)
    D += sq[rows, None]
    D += sq
    D[r, rows] = np.inf
    lim = 1e-6 * (sq[rows] + sq.max())  # cheap row filter first: near-duplicates are rare
    f = np.flatnonzero(D.min(1) < lim)
    ci, cj = np.nonzero(D[f] < 1e-6 * (sq[rows[f], None] + sq))
    close = (f[ci], cj)
    np.sqrt(np.maximum(D, 0.0, out=D), out=D)
    n = np.sqrt(sq[rows])[:, None]
    G /= np.where(n > 0, n, 1.0)
    np.subtract(n, G, out=G)
    diff = V[rows[close[0]]] - V[close[1]]
    D[close] = np.linalg.norm(diff, axis=1)
    G[close] = np.einsum("pd,pd->p", diff, V[rows[close[0]]]) / np.where(n > 0, n, 1.0)[close[0], 0]
    G /= D
    G[r, rows] = np.inf
    return D, G, close


def _smallest(m: np.ndarray, k: int, below: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of up to k smallest entries per row among those < below[row], padded.

    A threshold + sort of the survivors is several times cheaper than argpartition over F columns.
    Returns (idx, ok); padded slots have ok False and idx −1.
    """
    r, c = np.nonzero(m < below[:, None])
    order = np.lexsort((m[r, c], r))
    r, c = r[order], c[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r)
    keep = rank < k
    r, c, rank = r[keep], c[keep], rank[keep]
    idx = np.full((len(m), int(rank.max(initial=-1)) + 1), -1)
    idx[r, rank] = c
    return idx, idx >= 0


def _kth_estimate(m: np.ndarray, k: int, sample: int = 2048) -> np.ndarray:
    """Per-row estimate of the k-th smallest entry from a strided column sample (exact if F small)."""
    step = max(1, m.shape[1] // sample)
    s = m[:, ::step]
    kk = min(s.shape[1] - 1, int(np.ceil(k * s.shape[1] / m.shape[1])))
    return np.nextafter(np.partition(s, kk, axis=1)[:, kk], np.inf)


def _kkt(Q: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """KKT matrices [Q_SS 1; 1ᵀ 0] of the corrals in slot layout (slot[b, p] = member, −1 = free,
    which gets an identity row), so that solving against e_last gives the affine minimiser."""
    B, k = Q.shape[:2]
    S = slot.shape[1]
    occ = slot >= 0
    sc = np.maximum(slot, 0)
    K = np.zeros((B, S + 1, S + 1))
    lin = (np.arange(B)[:, None, None] * (k * k) + sc[:, :, None] * k) + sc[:, None, :]
    K[:, :S, :S] = np.take(Q, lin) * (occ[:, :, None] & occ[:, None, :])
    K.reshape(B, -1)[:, :S * (S + 2):S + 2] += np.where(occ, _RIDGE, 1.0)  # the diagonal
    K[:, :S, S] = K[:, S, :S] = occ
    return K


def _wolfe(Q, lam0, ok, tol, max_iter, add, cap):
    """Wolfe's min-norm-point algorithm for B problems at once, given each problem's Gram matrix Q
    (points with ok False are padding), warm-started at weights lam0.

    Major steps put up to `add` improving points into the corral at once (one at a time after a
    round without progress, which restores Wolfe's finite-termination argument); the corral never
    exceeds `cap` = d+1 points. The corral's KKT matrix is kept in slot layout and edited in place
    as points enter and leave, so no step regathers it. A problem stops when its ρ-interval is
    certified, ‖x‖ − min_s <x, s>/‖x‖ ≤ tol (Frank–Wolfe gap ≤ tol·‖x‖), or when ‖x‖ ≤ tol.
    """
    B, k = lam0.shape
    out, ids = lam0.copy(), np.arange(B)
    S = min(k, int((lam0 > 0).sum(1).max()) + add)
    slot = np.argsort(lam0 <= 0, axis=1, kind="stable")[:, :S]
    lam = np.take_along_axis(lam0, slot, 1)
    slot[lam <= 0] = -1
    K = _kkt(Q, slot)
    run, major, single = np.ones(B, bool), np.ones(B, bool), np.zeros(B, bool)
    best = np.full(B, np.inf)  # ‖x‖² at the previous major step
    for _ in range(max_iter):
        full_w = np.zeros((len(ids), k + 1))  # weights in candidate layout; column k absorbs free slots
        np.put_along_axis(full_w, np.where(slot >= 0, slot, k), lam, 1)
        if not run.any():
            break
        if run.mean() < 0.75:  # compact, so finished problems stop costing work
            out[ids] = full_w[:, :k]
            ids, Q, K, slot, lam, ok, major, single, best, run, full_w = (
                a[run] for a in (ids, Q, K, slot, lam, ok, major, single, best, run, full_w))
        n, S, r = len(ids), slot.shape[1], np.arange(len(ids))
        cor = np.zeros((n, k + 1), bool)
        np.put_along_axis(cor, np.where(slot >= 0, slot, k), True, 1)
        g = np.einsum("bjk,bk->bj", Q, full_w[:, :k])
        xx = np.einsum("bj,bj->b", full_w[:, :k], g)
        nx = np.sqrt(np.maximum(xx, 0.0))
        gm = np.where(ok & ~cor[:, :k] & (g < (xx - tol * nx)[:, None]), g, np.inf)
        mj = run & major
        stuck = xx >= best * (1 - 1e-14)  # no progress since the last major step
        run &= ~(mj & ((nx <= tol) | np.isinf(gm.min(1)) | (stuck & single)))
        mj &= run
        single = np.where(mj, stuck, single)
        best = np.where(mj, xx, best)
        size = (slot >= 0).sum(1)  # big corrals grow proportionally (dense optima, e.g. orthonormal)
        n_add = np.where(single, 1, np.clip(cap - size, 1, np.maximum(add, size // 4)))
        pick = np.argsort(gm, axis=1)[:, :n_add.max()]
        sel = mj[:, None] & (np.arange(pick.shape[1]) < n_add[:, None])
        sel &= np.isfinite(np.take_along_axis(gm, pick, 1))
        grow = int((sel.sum(1) - (slot < 0).sum(1)).max())
        if grow > 0:  # more slots: pad K (keeping its border last), slot and lam
            K2 = np.zeros((n, S + grow + 1, S + grow + 1))
            K2[:, :S, :S], K2[:, :S, -1], K2[:, -1, :S] = K[:, :S, :S], K[:, :S, S], K[:, S, :S]
            K2.reshape(n, -1)[:, (S + grow + 2) * S:-1:S + grow + 2] = 1.0
            K, S = K2, S + grow
            slot = np.hstack([slot, np.full((n, grow), -1)])
            lam = np.hstack([lam, np.zeros((n, grow))])
        b, c = np.nonzero(sel)  # point pick[b, c] enters the c-th free slot of problem b
        j, p = pick[b, c], np.argsort(slot >= 0, axis=1, kind="stable")[b, c]
        slot[b, p] = j
        row = np.take_along_axis(Q[b, j], np.maximum(slot[b], 0), 1) * (slot[b] >= 0)
        K[b, p, :S], K[b, :S, p] = row, row
        K[b, p, p] += _RIDGE
        K[b, p, S], K[b, S, p] = 1.0, 1.0
        # Minor cycle: jump to the corral's affine minimiser if it lies inside the corral, else
        # move towards it until a weight hits zero and drop the points that block (α ≤ 0, λ = 0).
        e = np.zeros((n, S + 1, 1))
        e[:, S] = 1.0
        alpha = np.linalg.solve(K, e)[:, :S, 0]
        occ = slot >= 0
        neg = occ & (alpha <= 0.0)
        full = run & ~neg.any(1)
        part = run & ~full
        ratio = np.where(neg, lam / np.maximum(lam - alpha, 1e-300), np.inf)
        t = ratio.argmin(1)
        theta = np.where(part, ratio[r, t], 1.0)[:, None]
        new = np.where(occ, lam + theta * (alpha - lam), 0.0)
        new[part, t[part]] = 0.0
        new[new < 1e-15] = 0.0
        lam = np.where(run[:, None], new / new.sum(1, keepdims=True), lam)
        b, p = np.nonzero(run[:, None] & occ & (lam == 0.0) & (neg | full[:, None]))
        K[b, p, :], K[b, :, p], K[b, p, p], slot[b, p] = 0.0, 0.0, 1.0, -1
        major = full
    out[ids] = full_w[:, :k]
    return out


def _solve(V, rows, W, ok, lam, tol, max_iter):
    """Min-norm points x (B×d) of conv{d_ij : j ∈ W[b], ok} for each row, warm-started at lam."""
    A = V[rows][:, None, :] - V[np.where(ok, W, (rows[:, None] + 1) % len(V))]
    A /= np.linalg.norm(A, axis=2, keepdims=True)
    k = A.shape[1]
    Q = np.empty((len(A), k, k))
    for i in range(0, k, 16):  # upper slabs, mirrored; thin ones keep BLAS single-threaded,
        blk = np.matmul(A[:, i:i + 16], A[:, i:].transpose(0, 2, 1))  # far faster on busy cores
        Q[:, i:i + 16, i:], Q[:, i:, i:i + 16] = blk, blk.transpose(0, 2, 1)
    lam = _wolfe(Q, lam, ok, tol, max_iter, 8, V.shape[1] + 1)
    return np.einsum("bk,bkd->bd", lam, A), lam


def decodability(values, *, tol: float = 1e-6, candidates: int = 64, max_iter: int = 1000,
                 chunk: int = 256) -> Decodability:
    """ρ, per-value ρ_i and best directions u_i*, certified against all values.

    tol is absolute on the ρ_i interval (all d_ij are unit, so ρ_i ∈ [0, 1]); `candidates` is the
    screened set per value and the most violators added per re-solve, `chunk` the number of values
    per block (memory ~ 4·chunk·M floats), `max_iter` caps Wolfe steps per solve (the reported gap
    stays honest if it is hit).
    """
    V = _as_table(values, distinct=True)
    M = len(V)
    sq = np.einsum("ij,ij->i", V, V)
    k0 = max(1, min(candidates, M - 1))
    rho_i, U, width = np.zeros(M), np.zeros_like(V), np.zeros(M)
    for start in range(0, M, chunk):
        block = np.arange(start, min(start + chunk, M))
        dist, score, close = _screen(V, sq, block)
        pos = np.zeros(len(block), int)
        W, ok = _smallest(score, k0, _kth_estimate(score, k0))
        del score
        lam = np.zeros(W.shape)
        lam[:, 0] = 1.0  # start at the best-scored competitor
        b, prev, step_tol = np.arange(len(block)), np.full(len(block), np.inf), max(tol, _ROUGH)
        while b.size:  # b: positions in the block still to certify
            rows = block[b]
            x, lam = _solve(V, rows, W, ok, lam, step_tol, max_iter)
            step_tol = tol
            nx = np.linalg.norm(x, axis=1)
            zero = nx <= tol
            u = np.where(zero[:, None], 0.0, x / np.where(zero, 1.0, nx)[:, None])
            # Certificate: margins of u_i against every value, from one product with Vᵀ.
            m = u @ V.T
            np.subtract(np.einsum("bd,bd->b", u, V[rows])[:, None], m, out=m)
            m /= dist if b.size == len(block) else dist[b]
            m[np.arange(b.size), rows] = np.inf
            pos[b] = np.arange(b.size)  # near-duplicate pairs: margins from the vectors themselves
            near = np.isin(close[0], b)
            ci, cj = pos[close[0][near]], close[1][near]
            m[ci, cj] = np.einsum("pd,pd->p", u[ci], V[rows[ci]] - V[cj]) / dist[close[0][near], cj]
            rho_i[rows] = np.where(zero, 0.0, m.min(1))
            U[rows], width[rows] = u, nx - rho_i[rows]
            fail = ~zero & (rho_i[rows] < nx - tol) & (nx < prev[b])  # violated, still improving
            if not fail.any():
                break
            # Re-solve the failures on their corral plus their worst violators.
            act = lam[fail] > 0
            keep = np.argsort(~act, axis=1, kind="stable")[:, :act.sum(1).max()]
            new, new_ok = _smallest(m[fail], max(k0, keep.shape[1]), nx[fail] - tol)
            W = np.hstack([np.take_along_axis(W[fail], keep, 1), new])
            ok = np.hstack([np.take_along_axis(act, keep, 1), new_ok])
            lam = np.hstack([np.take_along_axis(lam[fail], keep, 1), np.zeros(new.shape)])
            prev[b] = nx
            b = b[fail]
    return Decodability(float(rho_i.min()), rho_i, U, float(width.max()))


def rho(values, **kw) -> float:
    """ρ(V) = min_i ρ_i of a value table or a FactSet's values; keywords go to decodability()."""
    return decodability(values, **kw).rho


def coherence(values, *, chunk: int = 1024) -> float:
    """μ = max_{i≠j} |cos(v_i, v_j)|, computed in row blocks so F×F is never held."""
    V = _as_table(values, distinct=False)
    n = np.linalg.norm(V, axis=1)
    if (n == 0).any():
        raise ValueError(f"zero rows {np.flatnonzero(n == 0)[:10].tolist()} have no direction")
    Vn = V / n[:, None]
    mu = 0.0
    for s in range(0, len(V), chunk):
        C = np.abs(Vn[s:s + chunk] @ Vn.T)
        C[np.arange(C.shape[0]), np.arange(s, s + C.shape[0])] = 0.0
        mu = max(mu, float(C.max()))
    return min(mu, 1.0)


def rho_lower_bound(values, *, chunk: int = 1024) -> np.ndarray:
    """Per-value margin of the trivial direction u = v_i/‖v_i‖, clipped at 0: always ≤ ρ_i, and
    equal to sqrt((1 − max_j <v_i, v_j>)/2) for unit rows. A cheap sanity check on ρ."""
    V = _as_table(values, distinct=True)
    sq = np.einsum("ij,ij->i", V, V)
    out = np.empty(len(V))
    for s in range(0, len(V), chunk):
        rows = np.arange(s, min(s + chunk, len(V)))
        out[rows] = np.maximum(_screen(V, sq, rows)[1].min(1), 0.0)
    return out
