"""Poly-INR (Singh et al. 2023): a coordinate network whose layers multiply by affine maps of the
coordinates, with no positional encoding and no sines (architecture id 2, "poly").

    h = W0 x + b0
    h = leaky_relu(W_k (h * (A_k x + a_k)) + b_k),   k = 1 .. L-1   (negative slope 0.2)
    y = W_L h + b_L

Each layer raises the polynomial degree in x = (x, y) by one; LeakyReLU makes it piecewise.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from bitstream import POLY
from bitstream.architectures import POLY_NEGATIVE_SLOPE

#: initial coordinate maps A_k x + a_k: weights uniform in +-COORD_WEIGHT_BOUND, biases uniform in
#: COORD_BIAS_RANGE (a factor near 1 at the start, so the first steps see a plain MLP); coordinate
#: weights +-2 and input weights x2 fitted better than scale 1 (benchmarks/DECISIONS.md, Poly-INR)
COORD_WEIGHT_BOUND = 2.0
COORD_BIAS_RANGE = (0.5, 1.5)
INPUT_SCALE = 2.0  #: the input layer's initial weights are scaled by this


class PolyInr(nn.Module):
    """Coordinates (N, 2) in (-1, 1) -> values (N, channels) in about [-1, 1].

    Args:
        channels: output channels (1 or 3).
        hidden_width: features of every hidden layer.
        hidden_layers: number of hidden layers (the input layer and L - 1 multiplicative layers).
        omega0: unused (the header's omega0 is 1.0 for this family); accepted so every family is
            built with the same arguments.
    """

    arch_id = POLY

    def __init__(self, *, channels: int, hidden_width: int, hidden_layers: int, omega0: float = 1.0):
        super().__init__()
        self.first = nn.Linear(2, hidden_width)
        self.coord_maps = nn.ModuleList(nn.Linear(2, hidden_width) for _ in range(hidden_layers - 1))
        self.hidden = nn.ModuleList(nn.Linear(hidden_width, hidden_width) for _ in range(hidden_layers - 1))
        self.out = nn.Linear(hidden_width, channels)
        with torch.no_grad():
            bound = INPUT_SCALE / math.sqrt(2)
            self.first.weight.uniform_(-bound, bound)
            for a in self.coord_maps:
                a.weight.uniform_(-COORD_WEIGHT_BOUND, COORD_WEIGHT_BOUND)
                a.bias.uniform_(*COORD_BIAS_RANGE)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        h = self.first(coords)
        for coord_map, layer in zip(self.coord_maps, self.hidden):
            h = nn.functional.leaky_relu(layer(h * coord_map(coords)), POLY_NEGATIVE_SLOPE)
        return self.out(h)

    def header_fields(self) -> dict:
        """The header fields that describe this network (FORMAT.md §4; omega0 is 1.0 for this family)."""
        return {"channels": self.out.out_features, "hidden_width": self.first.out_features,
                "hidden_layers": len(self.hidden) + 1, "omega0": 1.0}

    def parameters_in_file_order(self) -> list[nn.Parameter]:
        """The order of the tensors in an `.inr` file (FORMAT.md §4.2)."""
        params = [self.first.weight, self.first.bias]
        for coord_map, layer in zip(self.coord_maps, self.hidden):
            params += [coord_map.weight, coord_map.bias, layer.weight, layer.bias]
        return params + [self.out.weight, self.out.bias]


MODEL = PolyInr
