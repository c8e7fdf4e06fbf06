"""The one coordinate convention shared by encoder and decoder.

Pixel (row i, column j) of an H x W grid sits at its centre: x = (2j + 1) / W - 1 and
y = (2i + 1) / H - 1, so each axis spans (-1, 1) on its own whatever the aspect ratio, and a
grid of any other size samples the same continuous image. Coordinates are ordered (x, y).

`axis_array`/`grid_array` are the numpy form (what a receiver without torch uses); `axis`/`grid`
the torch form, with the same float32 values. torch is imported only when those are called.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def axis_array(n: int) -> np.ndarray:
    """Centres of n pixels along one axis, in (-1, 1), float32 (computed in float64, then rounded)."""
    idx = np.arange(n, dtype=np.float64)
    return ((2.0 * idx + 1.0) / n - 1.0).astype(np.float32)


def grid_array(height: int, width: int, *, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
    """(rows * width, 2) float32 coordinates of rows [row_start, row_stop) of a height x width grid."""
    row_stop = height if row_stop is None else row_stop
    ys = axis_array(height)[row_start:row_stop]
    xs = axis_array(width)
    out = np.empty((len(ys), width, 2), dtype=np.float32)
    out[:, :, 0] = xs[None, :]
    out[:, :, 1] = ys[:, None]
    return out.reshape(-1, 2)


def axis(n: int, *, device=None) -> "torch.Tensor":
    """Centres of n pixels along one axis, in (-1, 1), float32."""
    import torch

    idx = torch.arange(n, dtype=torch.float64, device=device)
    return ((2.0 * idx + 1.0) / n - 1.0).to(torch.float32)


def grid(height: int, width: int, *, row_start: int = 0, row_stop: int | None = None, device=None) -> "torch.Tensor":
    """(rows * width, 2) coordinates of rows [row_start, row_stop) of a height x width grid."""
    import torch

    row_stop = height if row_stop is None else row_stop
    ys = axis(height, device=device)[row_start:row_stop]
    xs = axis(width, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
