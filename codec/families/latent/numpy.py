"""The latent-grid family evaluated with numpy alone: sampling of the grids exactly as torch's
``grid_sample`` does it (FORMAT.md §8.1), the synthesis MLP, and a faster renderer of whole pixel rows."""
from __future__ import annotations

import numpy as np

from bitstream import Header, architectures

from ..evaluation import Evaluation


CUBIC_A = -0.75  #: Keys' cubic convolution parameter of bicubic sampling (PyTorch's and OpenCV's value)


def cell_position(x: np.ndarray, cells: int) -> np.ndarray:
    """Positions in cell units of coordinates `x` (in (-1, 1)) along an axis of `cells` cells: cell i's
    centre is at i, i.e. at coordinate (2i + 1) / cells - 1 (the convention of codec.coords)."""
    one, two = x.dtype.type(1), x.dtype.type(2)
    return ((x + one) * x.dtype.type(cells) - one) / two


def taps(u: np.ndarray, cells: int, sampling: int = architectures.BILINEAR) -> tuple[np.ndarray, np.ndarray]:
    """(indices (T, N), weights (T, N)) of the cells that sampling at positions `u` (cell units) reads
    along one axis, as torch's ``grid_sample(padding_mode="border", align_corners=False)`` reads them
    (FORMAT.md §8.1). Bilinear (T = 2) clamps the position to [0, cells - 1] first, so past the outer
    centres it returns the border cell's value. Bicubic (T = 4, Keys' kernel with CUBIC_A) takes the
    position as it is and reads a cell index past the border as the border cell."""
    dtype = u.dtype
    one = dtype.type(1)
    if sampling == architectures.BILINEAR:
        u = np.clip(u, 0, cells - 1)
    elif sampling != architectures.BICUBIC:
        raise ValueError(f"unknown latent sampling {sampling}")
    i0 = np.floor(u)
    t = u - i0
    first = i0.astype(np.int64)
    if sampling == architectures.BILINEAR:
        return np.stack([first, np.minimum(first + 1, cells - 1)]), np.stack([i0 + one - u, t])
    a, two, three, five, eight, four = (dtype.type(v) for v in (CUBIC_A, 2, 3, 5, 8, 4))

    def outer(d):  # weight of a cell 1 < d < 2 cells away
        return ((a * d - five * a) * d + eight * a) * d - four * a

    def inner(d):  # weight of a cell d <= 1 cell away
        return ((a + two) * d - (a + three)) * d * d + one

    weights = np.stack([outer(t + one), inner(t), inner(one - t), outer((one - t) + one)])
    indices = np.clip(first[None] + np.arange(-1, 3)[:, None], 0, cells - 1)
    return indices, weights


def sample(grid: np.ndarray, coords: np.ndarray, sampling: int = architectures.BILINEAR) -> np.ndarray:
    """(N, C) samples of a (C, rows, columns) grid at (N, 2) coordinates (x, y), as torch's
    ``grid_sample(mode="bilinear" or "bicubic", padding_mode="border", align_corners=False)`` computes
    them: cell i of n sits at (2i + 1) / n - 1; 2 x 2 or 4 x 4 cells with the weights of :func:`taps`."""
    channels, rows, cols = grid.shape
    cx, wx = taps(cell_position(coords[:, 0], cols), cols, sampling)
    cy, wy = taps(cell_position(coords[:, 1], rows), rows, sampling)
    flat = grid.reshape(channels, -1).astype(coords.dtype, copy=False)
    # row taps outer, column taps inner; each weight is x weight * y weight
    terms = (flat[:, r * cols + c] * (a * b) for r, b in zip(cy, wy) for c, a in zip(cx, wx))
    out = next(terms)
    for term in terms:
        out += term
    return out.T


def evaluate(header: Header, weights: list[np.ndarray], coords: np.ndarray, *, order: int = 0) -> Evaluation:
    """Latent grids: samples of every grid (bilinear or bicubic, as the header says), concatenated,
    through a ReLU MLP (values only).

    Raises:
        ValueError: `order` > 0 (the derivative views are for the smooth families).
    """
    if order:
        raise ValueError("derivative views need a smooth network; the latent-grid family has none")
    levels = header.latent_levels
    h = np.concatenate([sample(g, coords, header.latent_sampling) for g in weights[:levels]], axis=1)
    return Evaluation(_relu_mlp(h, weights[levels:]))


def _relu_mlp(h: np.ndarray, layers: list[np.ndarray]) -> np.ndarray:
    """The latent-grid family's synthesis: weight, bias per layer (file order), ReLU between layers."""
    mlp = [t.astype(h.dtype, copy=False) for t in layers]
    for k in range(0, len(mlp), 2):
        h = h @ mlp[k].T
        h += mlp[k + 1]
        if k + 2 < len(mlp):
            np.maximum(h, 0, out=h)
    return h


def axis_taps(n_out: int, cells: int, dtype, sampling: int = architectures.BILINEAR) -> tuple[np.ndarray, np.ndarray]:
    """(indices (T, n_out), weights (T, n_out)) of every output pixel centre along one axis of `cells`
    cells: the taps of :func:`sample` at the coordinates of codec.coords."""
    x = ((2.0 * np.arange(n_out, dtype=np.float64) + 1.0) / n_out - 1.0).astype(dtype)
    return taps(cell_position(x, cells), cells, sampling)


def render_rows(header: Header, weights: list[np.ndarray], height: int, width: int, row_start: int,
                row_stop: int, dtype=np.float32) -> np.ndarray:
    """Values (rows x width, C) of rows [row_start, row_stop) of a height x width render of a latent-grid
    file: the grids are interpolated separably (along x for the grid rows the chunk needs, then along y),
    which gives the samples of :func:`sample` at the pixel centres up to float32 rounding, at a fraction
    of its cost."""
    levels, sampling = header.latent_levels, header.latent_sampling
    rows = row_stop - row_start
    feats = []
    for grid in weights[:levels]:
        channels, grid_rows, grid_cols = grid.shape
        cols_at, col_w = axis_taps(width, grid_cols, np.dtype(dtype), sampling)
        rows_at, row_w = (t[:, row_start:row_stop] for t in axis_taps(height, grid_rows, np.dtype(dtype), sampling))
        lo, hi = int(rows_at.min()), int(rows_at.max()) + 1
        g = grid[:, lo:hi].astype(dtype, copy=False)
        along_x = g[:, :, cols_at[0]] * col_w[0]  # (channels, grid rows lo..hi, width)
        for c, a in zip(cols_at[1:], col_w[1:]):
            along_x += g[:, :, c] * a
        out = along_x[:, rows_at[0] - lo] * row_w[0][None, :, None]
        for r, b in zip(rows_at[1:], row_w[1:]):
            out += along_x[:, r - lo] * b[None, :, None]
        feats.append(out.reshape(channels, rows * width))
    return _relu_mlp(np.concatenate(feats, axis=0).T, weights[levels:])
