"""The gated MLP every method produces: y = D[(U x + b_u) ⊙ σ(G x + b_g)] + b_d.

One model class for GD and for every construction, so one evaluation code scores them all and one
parameter count (every weight the forward pass uses, biases included, a factorised down
projection counted as its two factors) is reported everywhere.
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "bilinear": lambda z: z,
    "silu": torch.nn.functional.silu,
    "relu": torch.relu,
}

# σ'(z), for the hand-written backward of the batched trainer (relu' taken as 0 at 0, as autograd does).
ACTIVATION_DERIVATIVES = {
    "bilinear": lambda z: torch.ones_like(z),
    "silu": lambda z: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z))),
    "relu": lambda z: (z > 0).to(z.dtype),
}

# sup_z |σ'(z)|, used by the Lipschitz bound (silu' peaks at 1.0998 near z = 2.40).
ACTIVATION_SLOPE_BOUNDS = {"bilinear": 1.0, "silu": 1.1, "relu": 1.0}


class GatedMLP(nn.Module):
    """Gated MLP d→m→d; with ``decoder`` set, the down projection is encoder m→c then decoder c→d."""

    def __init__(
        self,
        up: torch.Tensor,
        gate: torch.Tensor,
        down: torch.Tensor,
        *,
        decoder: torch.Tensor | None = None,
        up_bias: torch.Tensor | None = None,
        gate_bias: torch.Tensor | None = None,
        down_bias: torch.Tensor | None = None,
        activation: str = "bilinear",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        width, d = up.shape
        if gate.shape != (width, d) or down.shape[1] != width:
            raise ValueError(f"inconsistent shapes up {tuple(up.shape)}, gate {tuple(gate.shape)}, down {tuple(down.shape)}")
        out = decoder.shape[0] if decoder is not None else down.shape[0]
        if decoder is not None and decoder.shape[1] != down.shape[0]:
            raise ValueError(f"decoder {tuple(decoder.shape)} does not match down {tuple(down.shape)}")
        self.activation = activation
        self.up = nn.Parameter(up)
        self.gate = nn.Parameter(gate)
        self.down = nn.Parameter(down)
        self.decoder = None if decoder is None else nn.Parameter(decoder)
        self.up_bias = None if up_bias is None else nn.Parameter(up_bias)
        self.gate_bias = None if gate_bias is None else nn.Parameter(gate_bias)
        self.down_bias = None if down_bias is None else nn.Parameter(down_bias)
        self.d_in, self.width, self.d_out = d, width, out

    @classmethod
    def random(cls, d: int, width: int, *, activation: str = "bilinear", bias: bool = False,
               generator: torch.Generator | None = None, dtype=torch.float32) -> "GatedMLP":
        """nn.Linear-style init: U(±1/√fan_in) for every weight and bias."""
        def uniform(shape, fan_in):
            bound = fan_in ** -0.5
            return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound
        return cls(
            uniform((width, d), d), uniform((width, d), d), uniform((d, width), width),
            up_bias=uniform((width,), d) if bias else None,
            gate_bias=uniform((width,), d) if bias else None,
            down_bias=uniform((d,), width) if bias else None,
            activation=activation,
        )

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        u = x @ self.up.T
        g = x @ self.gate.T
        if self.up_bias is not None:
            u = u + self.up_bias
        if self.gate_bias is not None:
            g = g + self.gate_bias
        return u * ACTIVATIONS[self.activation](g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.hidden(x) @ self.down.T
        if self.decoder is not None:
            y = y @ self.decoder.T
        if self.down_bias is not None:
            y = y + self.down_bias
        return y

    def effective_down(self) -> torch.Tensor:
        """The d_out×m linear map from hidden units to outputs (decoder @ down when factorised)."""
        return self.down if self.decoder is None else self.decoder @ self.down

    def param_count(self) -> int:
        """Every weight the forward pass uses; biases and both decoder factors included."""
        return sum(p.numel() for p in self.parameters())
