"""The gated MLP's parameter count and forward, and every evaluation metric against a naive version."""
import numpy as np
import pytest
import torch

from factmlp.evaluate import evaluate, jacobian_norms, lipschitz_bound, margins, outputs
from factmlp.geometries import make_factset
from factmlp.mlp import ACTIVATIONS, GatedMLP


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_mlp(d, m, *, activation="bilinear", bias=False, decoder=None, seed=0, dtype=torch.float64):
    model = GatedMLP.random(d, m, activation=activation, bias=bias, generator=gen(seed), dtype=dtype)
    if decoder is None:
        return model
    g = gen(seed + 1)
    return GatedMLP(model.up.data, model.gate.data, torch.randn(decoder, m, generator=g, dtype=dtype),
                    decoder=torch.randn(d, decoder, generator=g, dtype=dtype), activation=activation)


def constant_gate_mlp(a: torch.Tensor, activation="bilinear"):
    """g(x) = I·[(a x) ⊙ σ(0·x + 1)] = a x when σ(1) = 1: a gated MLP that is linear in x."""
    d = a.shape[1]
    return GatedMLP(a.clone(), torch.zeros_like(a), torch.eye(d, dtype=a.dtype), gate_bias=torch.ones(d, dtype=a.dtype),
                    activation=activation)


# ---- parameter count


@pytest.mark.parametrize("bias, expected", [(False, 3 * 8 * 5), (True, 3 * 8 * 5 + 2 * 5 + 8)])
def test_param_count_with_and_without_bias(bias, expected):
    assert random_mlp(8, 5, bias=bias).param_count() == expected


def test_factorised_decoder_counts_both_factors():
    model = random_mlp(8, 5, decoder=3)  # up, gate 5×8; encoder 3×5; decoder 8×3
    assert model.param_count() == 2 * 5 * 8 + 3 * 5 + 8 * 3


@pytest.mark.parametrize("kwargs", [dict(), dict(bias=True), dict(decoder=3), dict(activation="silu", bias=True)])
def test_param_count_is_the_size_of_every_tensor_the_forward_uses(kwargs):
    model = random_mlp(6, 4, **kwargs)
    x = torch.randn(10, 6, generator=gen(1), dtype=torch.float64)
    base, used = model(x), 0
    for p in model.parameters():
        with torch.no_grad():
            p += 0.5  # every counted tensor must change the output
            changed = not torch.allclose(model(x), base)
            p -= 0.5
        assert changed
        used += p.numel()
    assert used == model.param_count()


@pytest.mark.parametrize("activation", ["bilinear", "silu", "relu"])
def test_forward_is_the_gated_formula(activation):
    model = random_mlp(6, 4, activation=activation, bias=True)
    x = torch.randn(7, 6, generator=gen(2), dtype=torch.float64)
    u, g = x @ model.up.T + model.up_bias, x @ model.gate.T + model.gate_bias
    sigma = {"bilinear": g, "silu": g / (1 + torch.exp(-g)), "relu": g.clamp_min(0)}[activation]
    expected = (u * sigma) @ model.down.T + model.down_bias
    torch.testing.assert_close(model(x), expected)


def test_unknown_activation_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="unknown activation"):
        GatedMLP.random(4, 3, activation="tanh")
    with pytest.raises(ValueError, match="inconsistent shapes"):
        GatedMLP(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(4, 3))


# ---- accuracy and margins


def naive_margins(model, fs):
    out = []
    for i in range(fs.num_facts):
        g = model(torch.as_tensor(fs.keys[i])).detach().numpy()
        g = g / np.linalg.norm(g)
        right = g @ fs.values[fs.mapping[i]]
        wrong = max(g @ fs.values[j] for j in range(len(fs.values)) if j != fs.mapping[i])
        out.append(right - wrong)
    return np.array(out)


def test_margins_match_a_naive_loop_across_chunks():
    fs = make_factset("spherical", 8, 30, 1, tied=False)
    model = random_mlp(8, 6)
    np.testing.assert_allclose(margins(model, fs, chunk=7), naive_margins(model, fs), atol=1e-12)


def test_accuracy_is_the_fraction_decoded_by_argmax():
    fs = make_factset("spherical", 8, 40, 2)
    model = random_mlp(8, 12, seed=3)
    decoded = (outputs(model, fs.keys) @ torch.as_tensor(fs.values).T).argmax(dim=1).numpy()
    scores = evaluate(model, fs)
    assert scores["accuracy"] == pytest.approx(np.mean(decoded == fs.mapping))
    assert scores["margin_min"] == pytest.approx(naive_margins(model, fs).min())


def test_the_identity_stores_a_tied_identity_map_with_the_margin_of_the_nearest_value():
    fs = make_factset("spherical", 16, 50, 0, mapping="identity")
    model = constant_gate_mlp(torch.eye(16, dtype=torch.float64))
    gram = fs.keys @ fs.keys.T
    np.fill_diagonal(gram, -np.inf)
    np.testing.assert_allclose(margins(model, fs), 1 - gram.max(axis=1), atol=1e-12)
    assert evaluate(model, fs)["accuracy"] == 1.0


# ---- Lipschitz and Jacobian norms


@pytest.mark.parametrize("method", ["closed", "exact", "power"])
def test_jacobian_norm_of_a_linear_model_is_its_matrix_norm(method):
    a = torch.randn(10, 10, generator=gen(4), dtype=torch.float64)
    model = constant_gate_mlp(a)
    points = np.random.default_rng(0).standard_normal((9, 10))
    norms = jacobian_norms(model, points, method=method, chunk=4)
    np.testing.assert_allclose(norms, torch.linalg.matrix_norm(a, ord=2).item(), rtol=1e-6)
    assert lipschitz_bound(model) >= norms.max() * (1 - 1e-12)


@pytest.mark.parametrize("activation", ["bilinear", "silu", "relu"])
def test_exact_jacobian_norm_matches_the_hand_derived_jacobian(activation):
    model = random_mlp(6, 9, activation=activation, bias=True, seed=5)
    x = torch.randn(6, dtype=torch.float64, generator=gen(6))
    u, g = model.up @ x + model.up_bias, model.gate @ x + model.gate_bias
    g_ = g.clone().requires_grad_()
    sig = ACTIVATIONS[activation](g_)
    (dsig,) = torch.autograd.grad(sig.sum(), g_)
    jac = model.down @ (sig.detach()[:, None] * model.up + (u * dsig)[:, None] * model.gate)
    expected = torch.linalg.matrix_norm(jac.detach(), ord=2).item()
    for method in ("closed", "exact"):
        assert jacobian_norms(model, x[None].numpy(), method=method)[0] == pytest.approx(expected, rel=1e-10)
    assert jacobian_norms(model, x[None].numpy(), method="power")[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kwargs", [dict(), dict(activation="silu", bias=True), dict(activation="relu", bias=True),
                                    dict(decoder=3)])
def test_closed_form_jacobian_norms_match_autodiff_in_chunks(kwargs):
    """The closed form (what 'auto' picks for a GatedMLP) agrees with torch.func's full Jacobians."""
    model = random_mlp(6, 20, seed=3, **kwargs)
    points = np.random.default_rng(2).standard_normal((11, 6))
    closed = jacobian_norms(model, points, method="closed", chunk=2)
    np.testing.assert_allclose(closed, jacobian_norms(model, points, method="exact"), rtol=1e-10)
    np.testing.assert_array_equal(jacobian_norms(model, points, method="closed"), jacobian_norms(model, points))


@pytest.mark.parametrize("kwargs", [dict(), dict(activation="silu", bias=True), dict(activation="relu", bias=True),
                                    dict(decoder=4)])
def test_lipschitz_bound_holds_at_every_key_and_for_pairs_of_points(kwargs):
    fs = make_factset("spherical", 8, 60, 0)
    model = random_mlp(8, 16, seed=7, **kwargs)
    bound = lipschitz_bound(model)
    assert jacobian_norms(model, fs.keys).max() <= bound
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal((200, 8)) for _ in range(2))
    x /= np.maximum(1, np.linalg.norm(x, axis=1, keepdims=True))
    y /= np.maximum(1, np.linalg.norm(y, axis=1, keepdims=True))
    ratio = np.linalg.norm((outputs(model, x) - outputs(model, y)).numpy(), axis=1) / np.linalg.norm(x - y, axis=1)
    assert ratio.max() <= bound


def test_lipschitz_bound_of_a_bilinear_model_scales_with_the_radius():
    model = random_mlp(8, 16)
    assert lipschitz_bound(model, 3.0) == pytest.approx(3 * lipschitz_bound(model, 1.0), rel=1e-12)


# ---- query noise


def test_noise_directions_are_seeded_unit_vectors_one_per_key():
    from factmlp.evaluate import noise_directions

    u = noise_directions(60, 16, 5)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0)
    np.testing.assert_array_equal(u, noise_directions(60, 16, 5))
    assert not np.allclose(u, noise_directions(60, 16, 6))
