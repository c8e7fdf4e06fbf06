"""Rendering a decoded network on a pixel grid with numpy alone, in chunks of rows.

`render_image` gives the picture (the receiver's path when torch is not installed);
`render_view` gives the gradient-magnitude or Laplacian view from the network's exact derivatives.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from bitstream import Header

from ..coords import grid_array
from ..families.evaluation import Evaluator, widest_layer
from ..families.registry import family

#: at most about this many floats of hidden activations are alive at once (as codec.decoding.render)
CHUNK_ACTIVATIONS = 1 << 23
#: cost of each render relative to the picture (values, + 2 tangents, + 2 second-order tangents);
#: it multiplies the work counted against DecodeLimits.max_work and divides the rows per chunk
WORK_FACTOR = {"image": 1, "gradient": 3, "laplacian": 5}
#: the view is scaled so that this percentile of the magnitudes maps to full scale
VIEW_PERCENTILE = 99.5
VIEWS = ("gradient", "laplacian")


def evaluator_for(header: Header) -> Evaluator:
    """The numpy evaluator of the file's family (InrFormatError for an unknown one)."""
    return family(header.arch).numpy().evaluate


def _rows_per_chunk(header: Header, width: int, what: str) -> int:
    return max(1, CHUNK_ACTIVATIONS // max(1, width * widest_layer(header) * WORK_FACTOR[what]))


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Model output in [-1, 1] -> 8-bit values, exactly as codec.decoding.render.to_uint8 (NaN -> mid grey)."""
    values = np.nan_to_num(values, nan=0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values + np.float32(1.0)) * np.float32(127.5)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def render_chunks(header: Header, weights: list[np.ndarray], height: int, width: int
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(row_start, row_stop, float values (rows, width, channels)) of a height x width render, chunk by
    chunk in row order, computed in float32 as the torch decoder does."""
    evaluate = evaluator_for(header)
    render_rows = getattr(family(header.arch).numpy(), "render_rows", None)
    rows = _rows_per_chunk(header, width, "image")
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, height, rows):
            stop = min(height, start + rows)
            if render_rows is not None:
                values = render_rows(header, weights, height, width, start, stop)
            else:
                values = evaluate(header, weights, grid_array(height, width, row_start=start, row_stop=stop)).values
            yield start, stop, values.reshape(stop - start, width, header.channels)


def render_image(header: Header, weights: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """(height, width, channels) uint8 picture, computed in float32 as the torch decoder does."""
    out = np.empty((height, width, header.channels), dtype=np.uint8)
    for start, stop, values in render_chunks(header, weights, height, width):
        out[start:stop] = to_uint8(values)
    return out


def derivative_field(header: Header, weights: list[np.ndarray], height: int, width: int, view: str,
                     *, dtype=np.float32) -> np.ndarray:
    """(height, width) float field of the view, in 8-bit levels per pixel of the stored image.

    gradient: RMS over channels of |grad v|; laplacian: mean over channels of d2v/du2 + d2v/dv2,
    where v is the colour in 0..255 levels and (u, v) are coordinates in pixels of the stored
    width x height, whatever size is rendered.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    order = 1 if view == "gradient" else 2
    evaluate = evaluator_for(header)
    # d/d(pixel) = d/dx * 2 / stored side; output levels = 127.5 * network value
    per_pixel = np.array([2.0 / header.width, 2.0 / header.height])
    rows = _rows_per_chunk(header, width, view)
    out = np.empty((height, width), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, height, rows):
            stop = min(height, start + rows)
            coords = grid_array(height, width, row_start=start, row_stop=stop).astype(dtype, copy=False)
            ev = evaluate(header, weights, coords, order=order)
            if view == "gradient":
                field = 127.5 * np.sqrt(np.mean(np.sum((ev.jacobian * per_pixel) ** 2, axis=2), axis=1))
            else:
                field = 127.5 * np.mean(np.sum(ev.hessian_diag * per_pixel**2, axis=2), axis=1)
            out[start:stop] = field.reshape(stop - start, width)
    return out


def normalize_view(field: np.ndarray, view: str) -> np.ndarray:
    """Float field -> uint8 for viewing, scaled by the VIEW_PERCENTILE-th percentile of |field|.

    gradient: 0 is flat, 255 is that percentile or more. laplacian: 128 is zero, 0 and 255 are
    minus and plus that percentile or beyond. Non-finite values count as zero.
    """
    field = np.nan_to_num(field.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    ref = float(np.percentile(np.abs(field), VIEW_PERCENTILE)) if field.size else 0.0
    if not ref > 0:
        ref = 1.0
    if view == "gradient":
        scaled = 255.0 * np.abs(field) / ref
    else:
        scaled = 127.5 + 127.5 * field / ref
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def render_view(header: Header, weights: list[np.ndarray], height: int, width: int, view: str) -> np.ndarray:
    """(height, width, 1) uint8 gradient-magnitude or Laplacian view (see normalize_view)."""
    return normalize_view(derivative_field(header, weights, height, width, view), view)[:, :, None]
