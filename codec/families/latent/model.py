"""The latent-grid family (architecture id 3, "latent"): multi-resolution grids of learned latents,
sampled at any coordinate and turned into colours by a small synthesis MLP.

    f_l(x) = sample of grid l at x, bilinear or bicubic (level l has ceil(side / 2**l) cells per side)
    h = concat(f_0(x), ..., f_{L-1}(x))                (L x C_lat features)
    h = relu(W_k h + b_k),  k = 1 .. hidden_layers
    y = W_out h + b_out

Sampling follows the codec's coordinate convention (codec.coords: pixel centres, each axis in
(-1, 1)): a grid of n cells along an axis puts cell i's centre at (2i + 1) / n - 1, and a tap past
the border reads the border cell (``grid_sample`` with mode "bilinear" or "bicubic",
``align_corners=False, padding_mode="border"``; FORMAT.md §8.1 spells both out for other decoders).
The detail of the picture lives in the latents, which are entropy-coded; the MLP is a few hundred
multiply-adds per pixel.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bitstream import BILINEAR, LATENT, LatentGrid
from bitstream.architectures import SAMPLING_NAMES

from .numpy import axis_taps


def sample_grid(grid: torch.Tensor, coords: torch.Tensor, sampling: int = BILINEAR) -> torch.Tensor:
    """(N, C) samples of a (C, rows, columns) grid at (N, 2) coordinates (x, y): `codec.families.latent.numpy.sample`
    by ``grid_sample``, differentiable in the grid."""
    where = coords.reshape(1, 1, -1, 2).to(grid.dtype)
    return F.grid_sample(grid[None], where, mode=SAMPLING_NAMES[sampling], padding_mode="border",
                         align_corners=False)[0, :, 0].T


def interpolation_matrix(n_out: int, cells: int, sampling: int = BILINEAR, device=None) -> torch.Tensor:
    """(n_out, cells) weights of sampling at the n_out pixel centres along one axis of `cells` cells
    (the taps of `codec.families.latent.numpy.axis_taps`, as a matrix)."""
    indices, weights = axis_taps(n_out, cells, np.dtype(np.float64), sampling)
    m = np.zeros((n_out, cells))
    rows = np.arange(n_out)
    for i, w in zip(indices, weights):
        np.add.at(m, (rows, i), w)
    return torch.from_numpy(m).float().to(device)


def separable_samples(grid: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(pixels, C) samples of a (C, rows, columns) grid at every pixel centre of an image, row by row:
    rows x grid x columns^T with the interpolation matrices of `interpolation_matrix`."""
    return (rows @ grid @ cols.T).reshape(grid.shape[0], -1).T


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
        return torch.cat([sample_grid(g, coords, self.grid.sampling) for g in grids], dim=1)

    def pixel_features(self, coords: torch.Tensor, index: torch.Tensor, latents=None) -> torch.Tensor:
        """`features(coords[index])` for pixels of the grid's own image (`coords` its pixel centres, row by
        row): the finest grid, one cell per pixel, is read directly (its samples there are its cells, up
        to float rounding), the others are sampled."""
        grids = self.latents if latents is None else latents
        where = coords[index]
        out = [torch.index_select(grids[0].reshape(grids[0].shape[0], -1), 1, index).T]  # backward: index_add
        return torch.cat(out + [sample_grid(g, where, self.grid.sampling) for g in grids[1:]], dim=1)

    def image_matrices(self, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per grid, the (rows, columns) interpolation matrices that `image_features` uses."""
        height, width, sampling = self.grid.height, self.grid.width, self.grid.sampling
        return [(interpolation_matrix(height, shape[1], sampling, device),
                 interpolation_matrix(width, shape[2], sampling, device)) for shape in self.grid.level_shapes()]

    def image_features(self, matrices, latents=None) -> torch.Tensor:
        """`features` at every pixel centre of the grid's image (row by row), as separable products
        rows x grid x columns^T: the same values up to float rounding, and on a GPU far faster to
        differentiate than grid_sample, whose backward pass adds atomically into the coarse grids."""
        grids = self.latents if latents is None else latents
        return torch.cat([separable_samples(g, rows, cols) for g, (rows, cols) in zip(grids, matrices)], dim=1)

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

    def header_fields(self) -> dict:
        """The header fields that describe this network (FORMAT.md §4.3; omega0 is 1.0 for this family)."""
        return {"channels": self.layers[-1].out_features, "hidden_width": self.layers[0].out_features,
                "hidden_layers": len(self.layers) - 1, "omega0": 1.0, "latent_levels": self.grid.levels,
                "latent_channels": self.grid.channels, "latent_sampling": self.grid.sampling}

    def parameters_in_file_order(self) -> list[nn.Parameter]:
        """The order of the tensors in an `.inr` file (FORMAT.md §4.3): grids finest first, then the MLP."""
        params = list(self.latents)
        for layer in self.layers:
            params += [layer.weight, layer.bias]
        return params


MODEL = LatentGridInr
