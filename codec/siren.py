"""The SIREN of Sitzmann et al. (2020): sine layers sin(omega0 * (W x + b)) and a linear output."""
from __future__ import annotations

import math

import torch
from torch import nn

from bitstream import layer_sizes


class SineLayer(nn.Module):
    """A linear layer followed by sin(omega0 * .), initialised as in the SIREN paper."""

    def __init__(self, fan_in: int, fan_out: int, *, omega0: float, is_first: bool):
        super().__init__()
        self.omega0 = omega0
        self.linear = nn.Linear(fan_in, fan_out)
        bound = 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega0 * self.linear(x))


class Siren(nn.Module):
    """Coordinates (N, 2) in (-1, 1) -> values (N, channels) in about [-1, 1].

    Args:
        channels: output channels (1 for grayscale, 3 for RGB).
        hidden_width: units of every hidden layer.
        hidden_layers: number of sine layers.
        omega0: frequency factor of every sine layer (30 in the paper).
    """

    def __init__(self, *, channels: int, hidden_width: int, hidden_layers: int, omega0: float = 30.0):
        super().__init__()
        sizes = layer_sizes(hidden_width, hidden_layers, channels)
        self.sines = nn.ModuleList(
            SineLayer(i, o, omega0=omega0, is_first=(k == 0)) for k, (i, o) in enumerate(sizes[:-1])
        )
        fan_in, fan_out = sizes[-1]
        self.out = nn.Linear(fan_in, fan_out)
        bound = math.sqrt(6.0 / fan_in) / omega0
        with torch.no_grad():
            self.out.weight.uniform_(-bound, bound)

    def linears(self) -> list[nn.Linear]:
        """All linear layers in file order."""
        return [s.linear for s in self.sines] + [self.out]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        h = coords
        for layer in self.sines:
            h = layer(h)
        return self.out(h)

    def parameters_in_file_order(self) -> list[nn.Parameter]:
        """Weight then bias of every layer: the order of the tensors in an `.inr` file."""
        params = []
        for lin in self.linears():
            params += [lin.weight, lin.bias]
        return params


#: layers wider than this get a proportionally smaller fitting learning rate (lr_scaling "width")
LR_REFERENCE_WIDTH = 96


def siren_lr_scales(model: Siren, mode: str) -> tuple[float, ...]:
    """Per-tensor learning-rate multipliers in file order (weight and bias of each layer).

    "none": 1 everywhere. "width": layers after the first get min(1, LR_REFERENCE_WIDTH / fan_in).
    Adam moves every weight by about the learning rate per step, whatever its scale, and a layer
    sums fan_in such moves: the change of its pre-activation per step grows with the width (times
    omega0 in a sine layer). Past a width, the first steps throw the network into a state that never
    learns (measured on Kodak 768x512, 8 layers, with warm-up: width 320 stays at a flat image's PSNR
    at lr 1e-3 and learns at 5e-4; width 160 learns at 2e-3). The first layer's fan-in is the 2
    coordinates, so it keeps the full rate.
    """
    n = len(model.parameters_in_file_order())
    if mode == "none":
        return (1.0,) * n
    scales = []
    for k, lin in enumerate(model.linears()):
        fan_in = lin.weight.shape[1]
        scales += [1.0 if k == 0 else min(1.0, LR_REFERENCE_WIDTH / fan_in)] * 2
    return tuple(scales)
