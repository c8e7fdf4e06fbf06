"""The SIREN of Sitzmann et al. (2020): sine layers sin(omega0 * (W x + b)) and a linear output."""
from __future__ import annotations

import math

import torch
from torch import nn

from bitstream import SIREN, layer_sizes


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

    arch_id = SIREN

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

    def header_fields(self) -> dict:
        """The header fields that describe this network (FORMAT.md §4)."""
        return {"channels": self.out.out_features, "hidden_width": self.sines[0].linear.out_features,
                "hidden_layers": len(self.sines), "omega0": self.sines[0].omega0}

    def parameters_in_file_order(self) -> list[nn.Parameter]:
        """Weight then bias of every layer: the order of the tensors in an `.inr` file."""
        params = []
        for lin in self.linears():
            params += [lin.weight, lin.bias]
        return params


MODEL = Siren
