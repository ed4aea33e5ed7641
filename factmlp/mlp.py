"""The gated MLP every method produces: y = D[(U x + b_u) ⊙ σ(G x + b_g)] + b_d.

One model class for GD and for every construction, so one evaluation code scores them all and the
same two parameter counts are reported everywhere (docs/science.md#parameter-counting):
- ``param_count`` (the convention, "dense"): every weight the forward pass uses, biases included, a
  factorised down projection counted as its two factors; code coordinates that no unit writes (and
  the decoder columns they feed) change no output and are not counted;
- ``distinct_param_count`` ("distinct"): the values a model needs to be written down: gate rows
  (with their bias) repeated verbatim count once, and a down projection that is fixed 0/1 wiring
  (each unit writes one coordinate with weight 1) counts zero. For a dense trained MLP both agree;
  for the encoder–decoder, whose units share their bucket's gate and write one code coordinate
  each, the distinct count is about a third of the dense one.
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

    def _written(self) -> torch.Tensor:
        """Which outputs of the down projection some unit writes (all of them without a decoder)."""
        if self.decoder is None:
            return torch.ones(self.down.shape[0], dtype=torch.bool)
        return (self.down != 0).any(dim=1)

    def param_count(self) -> int:
        """Every weight the forward pass uses (biases and both decoder factors included), less the
        code coordinates no unit writes and the decoder columns they feed."""
        unused = int((~self._written()).sum())
        dead = unused * self.width + (unused * self.decoder.shape[0] if self.decoder is not None else 0)
        return sum(p.numel() for p in self.parameters()) - dead

    def distinct_param_count(self) -> int:
        """``param_count`` with repeated gate rows (and their biases) counted once and a 0/1 wiring
        down projection (one weight 1 per unit, the rest 0) counted as zero."""
        with torch.no_grad():
            gate = self.gate if self.gate_bias is None else torch.cat([self.gate, self.gate_bias[:, None]], dim=1)
            down = self.down[self._written()]
            wiring = self.decoder is not None and bool(((down == 0) | (down == 1)).all()) and bool(
                ((down == 1).sum(dim=0) == 1).all())
            parts = [self.up, torch.unique(gate, dim=0), self.up_bias, self.down_bias,
                     None if wiring else down,
                     None if self.decoder is None else self.decoder[:, self._written()]]
        return sum(p.numel() for p in parts if p is not None)
