"""The latent-grid family (architecture id 3, "latent"): multi-resolution grids of learned latents,
sampled at any coordinate and turned into colours by a small synthesis MLP.

    f_l(x) = bilinear sample of grid l at x          (level l has ceil(side / 2**l) cells per side)
    h = concat(f_0(x), ..., f_{L-1}(x))                (L x C_lat features)
    h = relu(W_k h + b_k),  k = 1 .. hidden_layers
    y = W_out h + b_out

Sampling follows the codec's coordinate convention (codec.coords: pixel centres, each axis in
(-1, 1)): a grid of n cells along an axis puts cell i's centre at (2i + 1) / n - 1, and a
coordinate past the outer centres takes the border cell's value (``grid_sample`` with
``align_corners=False, padding_mode="border"``; FORMAT.md §8.2 spells it out for other decoders).
The detail of the picture lives in the latents, which are entropy-coded; the MLP is a few hundred
multiply-adds per pixel.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bitstream import LATENT, LatentGrid

from .numpy_nets import axis_taps


def sample_grid(grid: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(N, C) bilinear samples of a (C, rows, columns) grid at (N, 2) coordinates (x, y)."""
    where = coords.reshape(1, 1, -1, 2).to(grid.dtype)
    return F.grid_sample(grid[None], where, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T


def interpolation_matrix(n_out: int, cells: int, device=None) -> torch.Tensor:
    """(n_out, cells) weights of bilinear sampling at the n_out pixel centres along one axis of `cells`
    cells (the taps of `numpy_nets.axis_taps`, as a matrix)."""
    i0, i1, w0, w1 = axis_taps(n_out, cells, np.dtype(np.float64))
    m = np.zeros((n_out, cells))
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), w0)
    np.add.at(m, (rows, i1), w1)
    return torch.from_numpy(m).float().to(device)


class LatentGridInr(nn.Module):
    """Coordinates (N, 2) in (-1, 1) -> values (N, channels) in about [-1, 1].

    Args:
        channels: output channels (1 or 3).
        hidden_width: units of every hidden layer of the synthesis MLP.
        hidden_layers: hidden layers of the synthesis MLP.
        omega0: unused (stored as 1.0 for this family); accepted so every family is built alike.
        grid: the latent grids' dimensions (image size, levels, channels per level).
    """

    arch_id = LATENT

    def __init__(self, *, channels: int, hidden_width: int, hidden_layers: int, omega0: float = 1.0,
                 grid: LatentGrid):
        super().__init__()
        self.grid = grid
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(shape)) for shape in grid.level_shapes())
        dims = [grid.levels * grid.channels] + [hidden_width] * hidden_layers + [channels]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def features(self, coords: torch.Tensor, latents=None) -> torch.Tensor:
        """(N, levels x channels) samples of every grid (or of `latents`, the same shapes) at `coords`."""
        grids = self.latents if latents is None else latents
        return torch.cat([sample_grid(g, coords) for g in grids], dim=1)

    def image_matrices(self, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per grid, the (rows, columns) interpolation matrices that `image_features` uses."""
        height, width = self.grid.height, self.grid.width
        return [(interpolation_matrix(height, shape[1], device), interpolation_matrix(width, shape[2], device))
                for shape in self.grid.level_shapes()]

    def image_features(self, matrices, latents=None) -> torch.Tensor:
        """`features` at every pixel centre of the grid's image (row by row), as separable products
        rows x grid x columns^T: the same values up to float rounding, and on a GPU far faster to
        differentiate than grid_sample, whose backward pass adds atomically into the coarse grids."""
        grids = self.latents if latents is None else latents
        out = [(rows @ g @ cols.T).reshape(g.shape[0], -1).T for g, (rows, cols) in zip(grids, matrices)]
        return torch.cat(out, dim=1)

    def synthesis(self, features: torch.Tensor, weights=None) -> torch.Tensor:
        """The MLP on (N, features); `weights` (file order, as parameters_in_file_order()[levels:]) replaces its own."""
        h = features
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            w, b = (layer.weight, layer.bias) if weights is None else (weights[2 * i], weights[2 * i + 1])
            h = F.linear(h, w, b)
            if i < last:
                h = F.relu(h)
        return h

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.features(coords))

    def parameters_in_file_order(self) -> list[nn.Parameter]:
        """The order of the tensors in an `.inr` file (FORMAT.md §4.3): grids finest first, then the MLP."""
        params = list(self.latents)
        for layer in self.layers:
            params += [layer.weight, layer.bias]
        return params
