"""The batched GD trainer: hand-written gradients, agreement with training alone, masking, early stop."""
import numpy as np
import pytest
import torch

from factmlp.evaluate import evaluate
from factmlp.geometries import make_factset
from factmlp.adam import Adam
from factmlp.device import resolve_device
from factmlp.train import (LAPTOP_RECIPE, MODEL_AXIS, TrainConfig, _init, _loss_and_grads, _stack, autograd_reference,
                           train_batched, train_gd)

FS = make_factset("spherical", 8, 32, 0, tied=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")
KEYS, VALUES = torch.tensor(FS.keys), torch.tensor(FS.values)
TARGETS = torch.tensor(FS.mapping)


def stacked(widths, config, dtype=torch.float64):
    return {k: v.to(dtype) for k, v in _stack(_init(8, widths, config), max(widths), "cpu").items()}


def model_slice(t, name, k):
    """Model k's part of a stacked tensor: up/gate rows (2, m, d), down_t (m, d), biases."""
    return t.select(MODEL_AXIS[name], k)


def reference_loss(model, factset=FS):
    """Mean cross-entropy by torch's own functions, the definition the trainer must match."""
    x = torch.as_tensor(factset.keys, dtype=model.up.dtype)
    logits = model(x) @ torch.as_tensor(factset.values, dtype=model.up.dtype).T
    return torch.nn.functional.cross_entropy(logits, torch.as_tensor(factset.mapping))


@pytest.mark.parametrize("activation", ["bilinear", "silu", "relu"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("budget", [1 << 16, 40])  # 40: the logits come in fact chunks of one model
def test_hand_written_gradients_equal_autograd(activation, bias, budget):
    widths = [3, 5]
    config = TrainConfig(activation=activation, bias=bias)
    p = stacked(widths, config)
    with torch.no_grad():  # move off the init so relu/silu see both signs and biases are nonzero
        for t in p.values():
            t.add_(0.3 * torch.randn(t.shape, generator=torch.Generator().manual_seed(1), dtype=t.dtype))
    loss, grads = _loss_and_grads(p, KEYS, VALUES, TARGETS, VALUES[TARGETS], activation, budget)
    for k, m in enumerate(widths):
        ref, ref_grads = autograd_reference({n: model_slice(v, n, k) for n, v in p.items()}, KEYS, VALUES, TARGETS,
                                            activation)
        assert set(ref_grads) == set(grads) == ({"upgate", "down_t", "hidden_bias", "out_bias"} if bias
                                                else {"upgate", "down_t"})
        assert loss[k].item() == pytest.approx(ref.item(), rel=1e-12)
        for name in ref_grads:
            torch.testing.assert_close(model_slice(grads[name], name, k), ref_grads[name], rtol=1e-9, atol=1e-12)


def test_the_autograd_reference_is_the_loss_of_the_model_it_slices():
    """The reference reads the stacked layout as the model does: its loss is the model's own cross-entropy."""
    config = TrainConfig(bias=True, activation="silu")
    models = _init(8, [3, 5], config)
    p = stacked([3, 5], config)
    for k, model in enumerate(models):
        ref, _ = autograd_reference({n: model_slice(v, n, k) for n, v in p.items()}, KEYS, VALUES, TARGETS, "silu")
        assert ref.item() == pytest.approx(reference_loss(model.double()).item(), rel=1e-9)


def test_padded_units_get_exactly_zero_gradient_and_stay_zero_under_adam():
    widths = [2, 7]
    config = TrainConfig(bias=True, activation="silu")
    p = stacked(widths, config, torch.float32)
    adam = Adam(p)
    for step in range(5):
        _, grads = _loss_and_grads(p, KEYS.float(), VALUES.float(), TARGETS, VALUES[TARGETS].float(), "silu", 1 << 16)
        assert (grads["upgate"][:, 0, 2:] == 0).all() and (grads["down_t"][0, 2:] == 0).all()
        assert (grads["hidden_bias"][:, 0, 2:] == 0).all()
        assert (grads["upgate"][:, 0, :2] != 0).all()
        adam.step(p, grads, 1e-2)
    assert (p["upgate"][:, 0, 2:] == 0).all() and (p["down_t"][0, 2:] == 0).all()
    assert (p["hidden_bias"][:, 0, 2:] == 0).all()
    assert (p["upgate"][:, 0, :2] != 0).all() and (p["upgate"][:, 1] != 0).all()


@pytest.mark.parametrize("bias, activation", [(False, "bilinear"), (True, "silu")])
def test_batched_training_agrees_with_training_each_width_alone(bias, activation):
    config = TrainConfig(epochs=300, lr=1e-2, lr_min=1e-4, loss_stop=0.0, bias=bias, activation=activation)
    widths = [3, 9, 5]
    batched = train_batched(FS, widths, config)
    for width, result in zip(widths, batched):
        alone = train_batched(FS, [width], config)[0]
        assert result["model"].width == width and result["epochs"] == alone["epochs"] == 300
        for name, a in alone["model"].named_parameters():
            torch.testing.assert_close(dict(result["model"].named_parameters())[name], a, rtol=1e-3, atol=2e-4)
        assert result["loss"] == pytest.approx(alone["loss"], rel=1e-3)
        assert evaluate(result["model"], FS)["accuracy"] == evaluate(alone["model"], FS)["accuracy"]


def test_training_lowers_the_loss_and_the_reported_loss_is_that_of_the_returned_weights():
    config = TrainConfig(epochs=200, lr=1e-2, loss_stop=0.0)
    (result,) = train_batched(FS, [6], config)
    start = reference_loss(_init(8, [6], config)[0])
    assert result["loss"] == pytest.approx(reference_loss(result["model"]).item(), rel=1e-5)
    assert result["loss"] < start.item() - 1.0


def test_early_stopping_freezes_a_model_at_a_check_and_the_others_go_on():
    config = TrainConfig(epochs=400, lr=1e-2, lr_min=1e-2, check_every=25, loss_stop=0.3)
    narrow, wide = train_batched(FS, [1, 24], config)
    assert narrow["epochs"] == 400 and narrow["loss"] > 0.3
    assert wide["epochs"] < 400 and (wide["epochs"] + 1) % 25 == 0 and wide["loss"] <= 0.3
    # The frozen weights are those at the check: their loss is the reported one ...
    assert wide["loss"] == pytest.approx(reference_loss(wide["model"]).item(), rel=1e-5)
    # ... which it had not reached at the previous check (lr is constant, so a shorter run is a prefix).
    assert wide["epochs"] > 25
    earlier = train_batched(FS, [24], TrainConfig(epochs=wide["epochs"] - 25, lr=1e-2, lr_min=1e-2, loss_stop=0.0))[0]
    assert earlier["loss"] > 0.3
    alone = train_batched(FS, [24], config)[0]
    assert alone["epochs"] == wide["epochs"]
    torch.testing.assert_close(alone["model"].up, wide["model"].up, rtol=1e-3, atol=2e-4)


def test_logits_in_chunks_give_the_same_training_up_to_rounding():
    config = TrainConfig(epochs=100, lr=1e-2, loss_stop=0.0)
    whole = train_batched(FS, [4, 7], config)
    chunked = train_batched(FS, [4, 7], TrainConfig(**{**config.__dict__, "logits_block": 100}))
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a["model"].down, b["model"].down, rtol=1e-3, atol=1e-4)


def test_the_recipe_defaults_and_the_schedule():
    config = TrainConfig()
    assert (config.epochs, config.lr, config.lr_min, config.loss_stop, config.activation, config.bias) == \
        (10_000, 1e-3, 1e-6, 1e-7, "bilinear", False)
    assert LAPTOP_RECIPE == TrainConfig(epochs=3000, lr=1e-2)  # the studies' `gd: {epochs: 3000, lr: 1.0e-2}`
    assert config.lr_at(0) == 1e-3
    assert config.lr_at(5_000) == pytest.approx((1e-3 + 1e-6) / 2)
    assert config.lr_at(10_000) == pytest.approx(1e-6)
    assert config.torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_train_gd_returns_a_model_of_the_width_on_cpu():
    model = train_gd(FS, 4, TrainConfig(epochs=5))
    assert model.width == 4 and model.up.device.type == "cpu" and model.up.dtype == torch.float32
    assert model.param_count() == 3 * 8 * 4


@pytest.mark.parametrize("widths", [[], [0, 3], [2.5]])
def test_bad_widths_are_rejected(widths):
    with pytest.raises(ValueError, match="widths"):
        train_batched(FS, widths, TrainConfig(epochs=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_training_agrees_with_cpu():
    config = TrainConfig(epochs=100, lr=1e-2, loss_stop=0.0)
    cpu = train_batched(FS, [3, 6], TrainConfig(**{**config.__dict__, "device": "cpu"}))
    gpu = train_batched(FS, [3, 6], TrainConfig(**{**config.__dict__, "device": "cuda"}))
    for a, b in zip(cpu, gpu):
        assert b["model"].up.device.type == "cpu"
        torch.testing.assert_close(a["model"].up, b["model"].up, rtol=1e-3, atol=1e-4)


def test_when_every_model_stops_early_training_ends_and_each_keeps_its_own_weights():
    config = TrainConfig(epochs=400, lr=1e-2, lr_min=1e-2, check_every=25, loss_stop=0.3)
    results = train_batched(FS, [24, 16, 24], config)
    assert all(r["epochs"] < 400 and r["loss"] <= 0.3 for r in results)
    torch.testing.assert_close(results[0]["model"].up, results[2]["model"].up)  # same width, same seed
    assert results[1]["model"].width == 16
    assert results[1]["loss"] == pytest.approx(reference_loss(results[1]["model"]).item(), rel=1e-5)


def test_auto_is_the_cpu_without_a_gpu_and_factmlp_device_overrides_it(monkeypatch):
    monkeypatch.delenv("FACTMLP_DEVICE", raising=False)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("FACTMLP_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu") and TrainConfig().torch_device() == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_cuda_device_torch_cannot_see_is_a_clear_error_before_any_work(monkeypatch):
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last visible GPU: none on a CPU machine
    with pytest.raises(RuntimeError, match=r"torch sees \d+ CUDA device\(s\).*use device 'auto'"):
        resolve_device(missing)
    with pytest.raises(RuntimeError, match="CUDA device"):
        train_batched(FS, [2], TrainConfig(epochs=1, device=missing))
    monkeypatch.setenv("FACTMLP_DEVICE", missing)  # the override is checked the same way
    with pytest.raises(RuntimeError, match="CUDA device"):
        resolve_device("auto")
