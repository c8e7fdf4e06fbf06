"""Evaluating a SIREN on a pixel grid of any size, in chunks of rows so memory stays bounded."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..coords import grid

#: at most this many hidden activations (floats) are alive at once while rendering
CHUNK_ACTIVATIONS = 1 << 23


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Model output in [-1, 1] -> 8-bit pixel values (round half to even, clamped)."""
    # nan_to_num: a hostile file can make the network output NaN; map it to a defined value (mid grey)
    values = torch.nan_to_num(values, nan=0.0)
    return torch.round((values + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8)


def _blocks(model: torch.nn.Module, height: int, width: int, hidden_width: int, device: torch.device,
            convert) -> Iterator[tuple[int, int, np.ndarray]]:
    rows_per_chunk = max(1, CHUNK_ACTIVATIONS // max(1, width * hidden_width))
    with torch.inference_mode():
        for start in range(0, height, rows_per_chunk):
            stop = min(height, start + rows_per_chunk)
            values = model(grid(height, width, row_start=start, row_stop=stop, device=device))
            yield start, stop, convert(values).cpu().numpy().reshape(stop - start, width, -1)


def render_chunks(model: torch.nn.Module, height: int, width: int, *, hidden_width: int,
                  device: torch.device) -> Iterator[tuple[int, int, np.ndarray]]:
    """(row_start, row_stop, float32 values (rows, width, channels)) of a height x width render of
    `model`, chunk by chunk in row order."""
    return _blocks(model, height, width, hidden_width, device, lambda values: values.float())


def render(model: torch.nn.Module, height: int, width: int, *, hidden_width: int, device: torch.device) -> np.ndarray:
    """Render `model` as a (height, width, channels) uint8 array."""
    out: np.ndarray | None = None
    for start, stop, block in _blocks(model, height, width, hidden_width, device, to_uint8):
        if out is None:
            out = np.empty((height, width, block.shape[2]), dtype=np.uint8)
        out[start:stop] = block
    assert out is not None
    return out
