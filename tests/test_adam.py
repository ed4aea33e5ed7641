"""The one hand-written Adam (factmlp/adam.py) computes what torch.optim.Adam and AdamW compute."""
import pytest
import torch

from factmlp.adam import Adam


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_and_adamw_match_torch_optim(weight_decay):
    gen = torch.Generator().manual_seed(0)
    p = {"w": torch.randn(3, 4, generator=gen, dtype=torch.float64), "b": torch.randn(5, generator=gen,
                                                                                      dtype=torch.float64)}
    ref = {k: v.clone().requires_grad_() for k, v in p.items()}
    kind = torch.optim.AdamW if weight_decay else torch.optim.Adam
    opt = kind(list(ref.values()), lr=1e-2, weight_decay=weight_decay)
    adam = Adam(p, weight_decay=weight_decay)
    for step in range(30):
        grads = {k: torch.sin(v * (step + 1)) for k, v in p.items()}
        adam.step(p, grads, 1e-2)
        for k, v in ref.items():
            v.grad = torch.sin(v.detach() * (step + 1))
        opt.step()
    for k in p:
        torch.testing.assert_close(p[k], ref[k].detach(), rtol=1e-12, atol=1e-14)


def test_moments_follow_a_cut_of_the_weights():
    """The batched trainer drops finished models: the moments must shrink with the weights."""
    p = {"w": torch.ones(4, 3)}
    adam = Adam(p)
    adam.step(p, {"w": torch.arange(12.0).view(4, 3)}, 0.1)
    adam.moments(lambda m: {k: v[1:3] for k, v in m.items()})
    assert adam.m1["w"].shape == adam.m2["w"].shape == (2, 3)
    torch.testing.assert_close(adam.m1["w"], 0.1 * torch.arange(3.0, 9.0).view(2, 3))
