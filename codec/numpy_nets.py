"""Decoded networks evaluated with numpy alone, one small function per architecture id.

A receiver without torch renders through these. Each evaluator takes the header, the dequantized
weights in file order and (N, 2) coordinates (x, y), and returns an :class:`Evaluation`: the
values (N, C) and, when asked, exact derivatives with respect to (x, y) by forward-mode
differentiation. Everything is computed in the dtype of the coordinates: float32 for images (as
the torch decoder), float64 where the tests compare against finite differences.

To support a new architecture, add its evaluator here and to EVALUATORS under its id from
`bitstream.architectures`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bitstream import Header, architectures


@dataclass(frozen=True)
class Evaluation:
    """values (N, C); jacobian (N, C, 2) = d value / d(x, y); hessian_diag (N, C, 2) = d2 value / d(x, y)^2."""

    values: np.ndarray
    jacobian: np.ndarray | None = None
    hessian_diag: np.ndarray | None = None


def siren(header: Header, weights: list[np.ndarray], coords: np.ndarray, *, order: int = 0) -> Evaluation:
    """SIREN: h <- sin(omega0 (W h + b)) per sine layer, then a linear output layer.

    Forward mode, per input axis k: with z = omega0 (W h + b) and h' = sin(z),
    dh'/dx_k = cos(z) * omega0 W dh/dx_k and
    d2h'/dx_k2 = cos(z) * omega0 W d2h/dx_k2 - sin(z) * (omega0 W dh/dx_k)^2.

    Args:
        order: 0 values only, 1 also the Jacobian, 2 also the second derivatives d2/dx2 and d2/dy2.
    """
    dtype = coords.dtype
    w0 = dtype.type(header.omega0)
    layers = [(w.astype(dtype, copy=False), b.astype(dtype, copy=False)) for w, b in zip(weights[0::2], weights[1::2])]
    h = coords
    n = coords.shape[0]
    dh = d2h = None
    if order >= 1:  # tangents per input axis: (2, N, features)
        dh = np.zeros((2, n, coords.shape[1]), dtype=dtype)
        dh[0, :, 0] = 1
        dh[1, :, 1] = 1
    if order >= 2:
        d2h = np.zeros_like(dh)
    for weight, bias in layers[:-1]:
        z = h @ weight.T
        z += bias
        z *= w0
        s = np.sin(z)
        if dh is not None:
            c = np.cos(z)
            dz = (dh @ weight.T) * w0
            if d2h is not None:
                d2h = c * ((d2h @ weight.T) * w0) - s * dz * dz
            dh = c * dz
        h = s
    weight, bias = layers[-1]
    values = h @ weight.T
    values += bias
    jacobian = None if dh is None else np.moveaxis(dh @ weight.T, 0, -1)
    hessian = None if d2h is None else np.moveaxis(d2h @ weight.T, 0, -1)
    return Evaluation(values, jacobian, hessian)


def poly(header: Header, weights: list[np.ndarray], coords: np.ndarray, *, order: int = 0) -> Evaluation:
    """Poly-INR: h <- W0 x + b0; per further layer h <- lrelu(W (h * (A x + a)) + b); linear output.

    Forward mode, per input axis k, with m = A x + a (dm/dx_k = A[:, k], d2m/dx_k2 = 0), p = h * m,
    z = W p + b and the piecewise-linear lrelu (slope s(z): 1 or 0.2, its second derivative 0):
    dp = dh * m + h * A[:, k], d2p = d2h * m + 2 dh * A[:, k], dh' = s(z) W dp, d2h' = s(z) W d2p.
    """
    dtype = coords.dtype
    slope = dtype.type(architectures.POLY_NEGATIVE_SLOPE)
    w = [t.astype(dtype, copy=False) for t in weights]
    first_w, first_b, out_w, out_b = w[0], w[1], w[-2], w[-1]
    h = coords @ first_w.T
    h += first_b
    dh = d2h = None
    if order >= 1:  # tangents per input axis: (2, N, features); h is affine in x at first
        dh = np.broadcast_to(first_w.T[:, None, :], (2, coords.shape[0], first_w.shape[0])).copy()
    if order >= 2:
        d2h = np.zeros_like(dh)
    for k in range(2, len(w) - 2, 4):
        coord_w, coord_b, weight, bias = w[k : k + 4]
        m = coords @ coord_w.T
        m += coord_b
        z = (h * m) @ weight.T
        z += bias
        gain = np.where(z >= 0, dtype.type(1), slope)
        if dh is not None:
            dm = coord_w.T[:, None, :]  # (2, 1, features): dm/dx_k
            if d2h is not None:
                d2h = gain * ((d2h * m + 2 * dh * dm) @ weight.T)
            dh = gain * ((dh * m + h * dm) @ weight.T)
        h = z * gain
    values = h @ out_w.T
    values += out_b
    jacobian = None if dh is None else np.moveaxis(dh @ out_w.T, 0, -1)
    hessian = None if d2h is None else np.moveaxis(d2h @ out_w.T, 0, -1)
    return Evaluation(values, jacobian, hessian)


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


def latent(header: Header, weights: list[np.ndarray], coords: np.ndarray, *, order: int = 0) -> Evaluation:
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


def latent_rows(header: Header, weights: list[np.ndarray], height: int, width: int, row_start: int,
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


Evaluator = Callable[..., Evaluation]

#: architecture id -> evaluator(header, weights, coords, *, order)
EVALUATORS: dict[int, Evaluator] = {architectures.SIREN: siren, architectures.POLY: poly, architectures.LATENT: latent}
#: architecture id -> a faster renderer of whole rows of a pixel grid (header, weights, height, width, start, stop)
ROW_RENDERERS: dict[int, Callable[..., np.ndarray]] = {architectures.LATENT: latent_rows}


def widest_layer(header: Header) -> int:
    """The largest number of features alive per coordinate (sizes the render chunks)."""
    return max(max(shape) for shape in header.tensor_shapes() if len(shape) <= 2)
