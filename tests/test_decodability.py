"""Decodability ρ (docs/science.md#decodability): exact cases, a slow independent reference, the certificate.

Note: for M orthonormal values the exact ρ_i is sqrt(M/(2(M−1))), not 1/√2; 1/√2 is the margin of
the trivial direction u = v_i (the lower bound) and the limit as M → ∞.
"""
import numpy as np
import pytest
from scipy.optimize import nnls

from factmlp.decodability import coherence, decodability, rho, rho_lower_bound


def _spherical(F, d, seed=0):
    X = np.random.default_rng(seed).standard_normal((F, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _reference(V, i, weight=1e4):
    """ρ_i and u_i* by a generic solver: the simplex QP min ‖Σλ_j d_ij‖² as a Lawson–Hanson NNLS
    with the constraint Σλ = 1 imposed by a heavily weighted extra row (error ~ 1/weight²)."""
    A = np.delete(V[i] - V, i, axis=0)
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    lam, _ = nnls(np.vstack([A.T, weight * np.ones(len(A))]), np.append(np.zeros(V.shape[1]), weight),
                  maxiter=10_000)
    x = (lam / lam.sum()) @ A
    r = np.linalg.norm(x)
    return r, x / max(r, 1e-300)


def _margins(V, U):
    """Brute-force min_j <u_i, d_ij> for every i."""
    out = []
    for i in range(len(V)):
        A = np.delete(V[i] - V, i, axis=0)
        out.append((A / np.linalg.norm(A, axis=1, keepdims=True) @ U[i]).min())
    return np.array(out)


@pytest.mark.parametrize("M,d", [(2, 2), (3, 3), (5, 5), (16, 16), (6, 20)])
def test_orthonormal_values(M, d):
    # Rows of a random orthogonal matrix; by symmetry u_i* ∝ v_i − mean_{j≠i} v_j and
    # ρ_i = sqrt(M / (2(M−1))), which tends to 1/√2 (the margin of u = v_i) as M grows.
    Q, _ = np.linalg.qr(np.random.default_rng(M).standard_normal((d, d)))
    V = Q[:M]
    res = decodability(V)
    np.testing.assert_allclose(res.rho_per_value, np.sqrt(M / (2 * (M - 1))), atol=1e-9)
    want = V - (V.sum(0) - V) / (M - 1)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(res.directions, want, atol=1e-6)
    np.testing.assert_allclose(rho_lower_bound(V), 1 / np.sqrt(2), atol=1e-12)
    assert res.gap <= 1e-6


def test_orthonormal_dense_optimum():
    # Every competitor is active here, so the certificate loop must grow past `candidates`.
    assert rho(np.eye(96), candidates=16) == pytest.approx(np.sqrt(96 / 190), abs=1e-9)


def test_two_values():
    V = np.array([[0.3, -2.0, 1.0], [4.0, 0.5, 0.0]])
    res = decodability(V)
    np.testing.assert_allclose(res.rho_per_value, 1.0, atol=1e-12)
    d = (V[0] - V[1]) / np.linalg.norm(V[0] - V[1])
    np.testing.assert_allclose(res.directions, [d, -d], atol=1e-12)


def test_value_inside_hull_has_zero_rho():
    V = np.random.default_rng(1).standard_normal((6, 4))
    V[5] = V[:3].mean(0)
    res = decodability(V)
    assert res.rho_per_value[5] == 0.0 and res.rho == 0.0
    assert not res.directions[5].any()
    assert (res.rho_per_value[:5] > 0).all()


@pytest.mark.parametrize("M,d,seed,unit", [(12, 5, 0, False), (30, 8, 1, False), (30, 8, 2, True),
                                           (40, 6, 3, True)])
def test_matches_slow_reference(M, d, seed, unit):
    V = np.random.default_rng(seed).standard_normal((M, d)) * (1.0 if unit else 1.7) + (0 if unit else 0.4)
    if unit:
        V /= np.linalg.norm(V, axis=1, keepdims=True)
    res = decodability(V)
    for i in range(M):
        r, u = _reference(V, i)
        assert abs(res.rho_per_value[i] - r) < 1e-6, i
        if r > 1e-3:
            np.testing.assert_allclose(res.directions[i], u, atol=1e-5)
    # rho_per_value is exactly the margin its direction attains against every value.
    np.testing.assert_allclose(_margins(V, res.directions)[res.rho_per_value > 0],
                               res.rho_per_value[res.rho_per_value > 0], atol=1e-10)
    assert 0 <= res.gap <= 1e-6


def test_certificate_adds_screened_out_constraints():
    V = np.random.default_rng(4).standard_normal((60, 6))
    res = decodability(V, candidates=2)
    exercised = False
    for i in range(len(V)):
        r, u = _reference(V, i)
        assert abs(res.rho_per_value[i] - r) < 1e-6, i
        if r > 1e-3:
            np.testing.assert_allclose(res.directions[i], u, atol=1e-5)
            A = np.delete(V[i] - V, i, axis=0)
            exercised |= ((A / np.linalg.norm(A, axis=1, keepdims=True)) @ u < r + 1e-6).sum() > 2
    assert exercised  # some value needs more than the 2 screened competitors
    np.testing.assert_allclose(res.rho_per_value, decodability(V).rho_per_value, atol=2e-6)


def test_low_rank_values():
    # Values in a 3-dim subspace of R^10: degenerate point sets must not break the solver.
    rng = np.random.default_rng(5)
    V = rng.standard_normal((25, 3)) @ rng.standard_normal((3, 10))
    res = decodability(V)
    for i in range(len(V)):
        assert abs(res.rho_per_value[i] - _reference(V, i)[0]) < 1e-6


@pytest.mark.parametrize("case", ["near_duplicate", "zero_row", "huge", "tiny", "line"])
def test_awkward_inputs_match_reference(case):
    rng = np.random.default_rng(13)
    V = rng.standard_normal((25, 6))
    if case == "near_duplicate":  # Gram-based distances would cancel to 0 here
        V[7] = V[3] + 1e-9 * rng.standard_normal(6)
    elif case == "zero_row":
        V[0] = 0.0
    elif case == "line":  # interior points of a segment have ρ = 0, the two ends ρ = 1
        V = np.arange(10.0)[:, None] * [1.0, 2.0]
    V = V * {"huge": 1e8, "tiny": 1e-8}.get(case, 1.0)
    res = decodability(V)
    for i in range(len(V)):
        assert abs(res.rho_per_value[i] - _reference(V, i)[0]) < 1e-6, i
    assert res.gap <= 1e-6


def test_invariant_to_translation_and_scale():
    V = _spherical(300, 16, seed=6)
    a, b = decodability(V), decodability(3.0 * V + 5.0)
    np.testing.assert_allclose(a.rho_per_value, b.rho_per_value, atol=2e-6)


@pytest.mark.parametrize("F,d,want", [(256, 32, 0.55), (256, 64, 0.61), (1024, 32, 0.51)])
def test_spherical_reference_table(F, d, want):
    res = decodability(_spherical(F, d))
    assert abs(res.rho - want) <= 0.05
    assert res.gap <= 1e-6


def test_lower_bound_below_rho():
    for V in (_spherical(200, 12, seed=7), np.random.default_rng(8).standard_normal((80, 5)) + 1.0):
        lb, res = rho_lower_bound(V), decodability(V)
        assert (lb <= res.rho_per_value + 1e-9).all()
    V = _spherical(200, 12, seed=7)
    G = V @ V.T
    np.fill_diagonal(G, -np.inf)
    np.testing.assert_allclose(rho_lower_bound(V), np.sqrt((1 - G.max(1)) / 2), atol=1e-12)


def test_coherence():
    Q, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((8, 8)))
    assert coherence(Q) < 1e-12
    V = np.random.default_rng(10).standard_normal((5, 4))
    V[3] = -2.5 * V[1]
    assert coherence(V) == pytest.approx(1.0)
    W = np.random.default_rng(11).standard_normal((50, 7))
    Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
    C = np.abs(Wn @ Wn.T)
    np.fill_diagonal(C, 0)
    assert coherence(W, chunk=16) == pytest.approx(C.max())


def test_duplicate_rows_are_named():
    V = np.random.default_rng(12).standard_normal((6, 3))
    V[4] = V[1]
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        decodability(V)
    with pytest.raises(ValueError, match="duplicate"):
        rho_lower_bound(V)


@pytest.mark.parametrize("bad", [np.zeros(3), np.ones((1, 3)), np.array([[0.0, np.nan], [1.0, 2.0]])])
def test_invalid_input(bad):
    with pytest.raises(ValueError):
        decodability(bad)
