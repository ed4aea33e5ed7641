"""Synthetic fact sets: each geometry does what docs/science.md#fact-sets-and-geometries says, deterministically."""
import numpy as np
import pytest

from factmlp.factsets import whiten
from factmlp.geometries import make_factset
from factmlp.synthetic_geometries import NAMES as GEOMETRIES
from factmlp.synthetic_geometries import condition, spike, spike_direction


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_same_arguments_give_the_same_tables_and_the_seed_changes_them(geometry):
    kw = dict(tied=False, beta=2.0 if geometry == "spike" else 0.0)
    a, b = make_factset(geometry, 16, 40, 3, **kw), make_factset(geometry, 16, 40, 3, **kw)
    c = make_factset(geometry, 16, 40, 4, **kw)
    for name in ("keys", "values", "mapping"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.allclose(a.keys, c.keys)
    assert not np.array_equal(a.mapping, c.mapping)


def test_the_map_and_the_embeddings_use_separate_random_streams():
    perm, ident = make_factset(d=16, num_facts=40, seed=1), make_factset(d=16, num_facts=40, seed=1, mapping="identity")
    np.testing.assert_array_equal(perm.keys, ident.keys)


@pytest.mark.parametrize("geometry", ["spherical", "uniform", "spike"])
def test_rows_are_unit_norm_where_promised(geometry):
    fs = make_factset(geometry, 24, 100, 0, tied=False, beta=3.0 if geometry == "spike" else 0.0)
    for table in (fs.keys, fs.values):
        np.testing.assert_allclose(np.linalg.norm(table, axis=1), 1.0, atol=1e-12)


def test_uniform_is_all_positive_and_gaussian_has_variance_one_over_d():
    assert (make_factset("uniform", 24, 100).keys > 0).all()
    keys = make_factset("gaussian", 64, 2000).keys
    assert abs(keys.var() * 64 - 1) < 0.05
    assert np.linalg.norm(keys, axis=1).std() > 0.01  # not normalised


def test_spike_scales_the_component_along_u_by_one_plus_beta_before_renormalising():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((5, 8))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    u = spike_direction(8, 0)
    c = e @ u
    for beta in (0.5, 3.0):
        expected = (1 + beta) * c / np.sqrt(1 - c ** 2 + (1 + beta) ** 2 * c ** 2)
        np.testing.assert_allclose(spike(e, u, beta) @ u, expected, atol=1e-12)


@pytest.mark.parametrize("spike_on", ["keys", "values", "both"])
def test_spike_raises_the_mean_abs_cosine_along_u_only_where_applied(spike_on):
    d, seed = 32, 5
    u = spike_direction(d, seed)
    plain = make_factset("spike", d, 500, seed, tied=False, beta=0.0)
    spiked = make_factset("spike", d, 500, seed, tied=False, beta=4.0, spike_on=spike_on)
    for side in ("keys", "values"):
        before, after = np.abs(getattr(plain, side) @ u).mean(), np.abs(getattr(spiked, side) @ u).mean()
        if spike_on in (side, "both"):
            assert after > 2 * before
        else:
            np.testing.assert_array_equal(getattr(plain, side), getattr(spiked, side))
    if spike_on == "both":  # one u for keys and values
        assert np.abs(spiked.keys @ u).mean() > 2 * np.abs(plain.keys @ u).mean()


def test_larger_beta_means_more_anisotropy():
    u = spike_direction(32, 0)
    means = [np.abs(make_factset("spike", 32, 300, beta=b).keys @ u).mean() for b in (0.0, 1.5, 3.0, 6.0)]
    assert means == sorted(means) and means[-1] > 3 * means[0]


@pytest.mark.parametrize("kappa", [1.0, 10.0, 1000.0])
def test_condition_gives_a_linear_singular_value_ramp_of_ratio_kappa_and_keeps_the_frobenius_norm(kappa):
    fs = make_factset("condition", 16, 200, 2, kappa=kappa)
    s = np.linalg.svd(fs.keys, compute_uv=False)
    assert s[0] / s[-1] == pytest.approx(kappa, rel=1e-9)
    np.testing.assert_allclose(s / s[0], np.linspace(1, 1 / kappa, 16), atol=1e-12)
    # The base table has unit rows, so its Frobenius norm is √F.
    assert np.linalg.norm(fs.keys) == pytest.approx(np.sqrt(200), rel=1e-12)


def test_condition_keeps_the_singular_vectors():
    table = np.random.default_rng(1).standard_normal((30, 6))
    u0, _, vt0 = np.linalg.svd(table, full_matrices=False)
    u1, _, vt1 = np.linalg.svd(condition(table, 5.0), full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(vt0 * vt1, axis=1)), 1.0, atol=1e-9)


def test_condition_rejects_kappa_below_one():
    with pytest.raises(ValueError, match="kappa"):
        condition(np.eye(3), 0.5)


@pytest.mark.parametrize("geometry", ["uniform", "gaussian", "spike"])
def test_whitened_values_have_identity_covariance(geometry):
    fs = make_factset(geometry, 16, 400, 0, whiten=True, beta=3.0 if geometry == "spike" else 0.0)
    centred = fs.values - fs.values.mean(axis=0)
    np.testing.assert_allclose(centred.T @ centred / 400, np.eye(16), atol=1e-9)
    raw = make_factset(geometry, 16, 400, 0, beta=3.0 if geometry == "spike" else 0.0)
    np.testing.assert_array_equal(fs.keys, raw.keys)  # only the values are whitened


def test_whitening_a_rank_deficient_table_projects_instead_of_blowing_up():
    table = np.random.default_rng(0).standard_normal((5, 12))  # F < d: covariance of rank 4
    white = whiten(table)
    centred = white - white.mean(axis=0)
    evals = np.linalg.eigvalsh(centred.T @ centred / 5)
    np.testing.assert_allclose(np.sort(evals), [0] * 8 + [1] * 4, atol=1e-9)


def test_tied_shares_one_table_and_separate_draws_two():
    tied, separate = make_factset(d=16, num_facts=50, tied=True), make_factset(d=16, num_facts=50, tied=False)
    np.testing.assert_array_equal(tied.keys, tied.values)
    np.testing.assert_array_equal(tied.keys, separate.keys)
    assert np.abs(separate.keys @ separate.values.T).max() < 0.99


def test_identity_and_permutation_maps():
    ident = make_factset(d=8, num_facts=64, mapping="identity")
    np.testing.assert_array_equal(ident.mapping, np.arange(64))
    np.testing.assert_array_equal(ident.targets, ident.values)
    perm = make_factset(d=8, num_facts=64, mapping="permutation")
    np.testing.assert_array_equal(np.sort(perm.mapping), np.arange(64))
    assert (perm.mapping != np.arange(64)).mean() > 0.9
    np.testing.assert_array_equal(perm.targets[5], perm.values[perm.mapping[5]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(geometry="cube"), "geometry: got 'cube'"),
    (dict(mapping="random"), "mapping: got 'random'"),
    (dict(tide=False), "tide: not an option of any geometry"),
    (dict(geometry="spherical", beta=2.0), "beta"),
    (dict(geometry="spike", beta=-1.0), "beta"),
    (dict(spike_on="queries"), "spike_on"),
    (dict(d=0), "positive"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_factset(**{"d": 8, "num_facts": 16, **kwargs})
