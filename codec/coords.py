"""The one coordinate convention shared by encoder and decoder.

Pixel (row i, column j) of an H x W grid sits at its centre: x = (2j + 1) / W - 1 and
y = (2i + 1) / H - 1, so each axis spans (-1, 1) on its own whatever the aspect ratio, and a
grid of any other size samples the same continuous image. Coordinates are ordered (x, y).
"""
from __future__ import annotations

import torch


def axis(n: int, *, device=None) -> torch.Tensor:
    """Centres of n pixels along one axis, in (-1, 1), float32."""
    idx = torch.arange(n, dtype=torch.float64, device=device)
    return ((2.0 * idx + 1.0) / n - 1.0).to(torch.float32)


def grid(height: int, width: int, *, row_start: int = 0, row_stop: int | None = None, device=None) -> torch.Tensor:
    """(rows * width, 2) coordinates of rows [row_start, row_stop) of a height x width grid."""
    row_stop = height if row_stop is None else row_stop
    ys = axis(height, device=device)[row_start:row_stop]
    xs = axis(width, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
