"""Band-limited decodes below the stored size: the network is evaluated at the stored density along
every axis that shrinks (at most OVERSAMPLE evaluations per output pixel along it), and its values
are filtered onto the output grid with a Lanczos-3 kernel stretched over each output pixel's
footprint, row chunk by row chunk.

Point-sampling a network at fewer points than it was fitted on aliases (its detail is stored at one
cell per stored pixel, and the synthesis is not linear, so prefiltering its inputs is not enough);
filtering what it renders at its own density gives what decoding at the stored size and resizing
gives, without holding the stored-size image in memory: only the rows of one chunk plus the kernel's
support are alive at once.

The kernel is Pillow's LANCZOS (``Image.resize``): output pixel i of n_out over n_in input pixels is
centred at (i + 0.5) x s, s = n_in / n_out, and takes input pixel j with weight lanczos3((j + 0.5 -
centre) / s), the weights normalised to sum to one over the pixels inside the support 3 s.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

LOBES = 3  #: Lanczos-3, Pillow's LANCZOS
#: most evaluations per output pixel along an axis: decodes down to 1/OVERSAMPLE of the stored size
#: evaluate every stored pixel; smaller thumbnails evaluate OVERSAMPLE x their side, so their cost
#: follows the output, not the file
OVERSAMPLE = 8


def lanczos(x: np.ndarray) -> np.ndarray:
    """The Lanczos-3 kernel sinc(x) sinc(x / 3) on |x| < 3, zero outside."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.abs(x) < LOBES, np.sinc(x) * np.sinc(x / LOBES), 0.0)


def lanczos_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices (T, n_out) int64, weights (T, n_out) float32) of a Lanczos-3 resize of n_in samples
    to n_out <= n_in along one axis; each output's indices are contiguous and increasing (padding taps
    repeat the last index with weight zero)."""
    if not 1 <= n_out <= n_in:
        raise ValueError(f"a downscale needs 1 <= n_out <= n_in, got {n_out} and {n_in}")
    scale = n_in / n_out
    support = LOBES * scale
    centre = (np.arange(n_out, dtype=np.float64) + 0.5) * scale
    lo = np.clip(np.floor(centre - support + 0.5), 0, None).astype(np.int64)
    hi = np.minimum(np.floor(centre + support + 0.5).astype(np.int64), n_in)
    span = int((hi - lo).max())
    j = lo[None, :] + np.arange(span, dtype=np.int64)[:, None]
    inside = j < hi[None, :]
    w = np.where(inside, lanczos((j + 0.5 - centre[None, :]) / scale), 0.0)
    w /= w.sum(axis=0, keepdims=True)
    return np.minimum(j, hi[None, :] - 1), w.astype(np.float32)


def evaluation_size(stored: tuple[int, int], out: tuple[int, int], most_pixels: int) -> tuple[int, int]:
    """(width, height) to evaluate the network at for an output of `out` (width, height): along an axis
    that shrinks, the stored side or OVERSAMPLE x the output's, whichever is smaller; the output's
    otherwise. If that would be more than `most_pixels` evaluations (and the output itself is not), the
    sides above the output shrink by one factor; a side that reaches the output stays there and the
    other takes what is left."""
    size = [max(o, min(s, OVERSAMPLE * o)) for s, o in zip(stored, out)]
    if size[0] * size[1] > most_pixels >= out[0] * out[1]:
        factor = (most_pixels / (size[0] * size[1])) ** 0.5
        size = [max(o, int(s * factor)) for s, o in zip(size, out)]
        for axis in (0, 1):  # one side held at the output: the other gets the rest of the budget
            other = 1 - axis
            if size[axis] == out[axis] and size[0] * size[1] > most_pixels:
                size[other] = max(out[other], most_pixels // size[axis])
    return size[0], size[1]


def _along(values: np.ndarray, taps: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    """Filter `values` along `axis` (0: rows, 1: columns) with `taps` for every output along it."""
    indices, weights = taps
    shape = [1] * values.ndim
    shape[axis] = weights.shape[1]
    out = np.take(values, indices[0], axis=axis) * weights[0].reshape(shape)
    for i, w in zip(indices[1:], weights[1:]):
        out += np.take(values, i, axis=axis) * w.reshape(shape)
    return out


def downscale_rows(chunks: Iterable[tuple[int, int, np.ndarray]], size: tuple[int, int],
                   out: tuple[int, int]) -> Iterator[tuple[int, int, np.ndarray]]:
    """Filter a stream of rendered row chunks onto a smaller grid.

    Args:
        chunks: (row_start, row_stop, float values (rows, width, channels)) of a render at `size`
            (width, height), in order, values already clipped to the output range.
        size: the rendered (width, height); out: the output (width, height), no side larger.
    Yields:
        (row_start, row_stop, float32 values (rows, out width, channels)) of the output, in order.
    """
    (width, height), (out_w, out_h) = size, out
    cols = lanczos_taps(out_w, width) if out_w < width else None
    rows = lanczos_taps(out_h, height) if out_h < height else None
    first = rows[0][0] if rows is not None else np.arange(out_h)  # lowest input row each output row reads
    last = rows[0][-1] if rows is not None else np.arange(out_h)  # highest
    pending: np.ndarray | None = None  # horizontally filtered input rows [base, base + len)
    base = done = 0
    for start, stop, values in chunks:
        values = _along(values, cols, 1) if cols is not None else values.astype(np.float32, copy=False)
        pending = values if pending is None else np.concatenate([pending, values])
        upto = int(np.searchsorted(last, stop - 1, side="right"))  # output rows whose inputs are all here
        if upto > done:
            if rows is None:
                block = pending[done - base:upto - base]
            else:
                block = _along(pending, (rows[0][:, done:upto] - base, rows[1][:, done:upto]), 0)
            yield done, upto, block
            done = upto
        if done < out_h:  # keep only the rows the next outputs read
            keep = int(first[done]) - base
            if keep > 0:
                pending, base = pending[keep:], base + keep
    if done != out_h:
        raise ValueError(f"the chunks covered {done} of {out_h} output rows")
