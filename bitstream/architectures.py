"""Stable architecture ids and the tensor shapes each architecture stores.

Ids are part of the file format and never change meaning; new INR families get new ids.
"""
from __future__ import annotations

SIREN = 1
NAMES = {SIREN: "siren"}

IN_FEATURES = 2  # (x, y) coordinates


def layer_sizes(hidden_width: int, hidden_layers: int, channels: int) -> list[tuple[int, int]]:
    """(in_features, out_features) of every linear layer, first to last."""
    dims = [IN_FEATURES] + [hidden_width] * hidden_layers + [channels]
    return [(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]


def tensor_shapes(arch: int, hidden_width: int, hidden_layers: int, channels: int) -> list[tuple[int, ...]]:
    """Shapes of the stored tensors in file order: weight (out, in) then bias (out,) per layer."""
    if arch != SIREN:
        raise KeyError(arch)
    shapes: list[tuple[int, ...]] = []
    for fan_in, fan_out in layer_sizes(hidden_width, hidden_layers, channels):
        shapes.append((fan_out, fan_in))
        shapes.append((fan_out,))
    return shapes


def parameter_count(hidden_width: int, hidden_layers: int, channels: int) -> int:
    """Number of stored values of a SIREN with these dimensions."""
    return sum((i + 1) * o for i, o in layer_sizes(hidden_width, hidden_layers, channels))


def multiply_adds(arch: int, hidden_width: int, hidden_layers: int, channels: int) -> int:
    """Multiply-adds of one forward evaluation at one coordinate: the sizes of the weight matrices."""
    total = 0
    for shape in tensor_shapes(arch, hidden_width, hidden_layers, channels):
        if len(shape) == 2:
            total += shape[0] * shape[1]
    return total
