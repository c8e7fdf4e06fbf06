"""The registry of INR families: stable ids, names, and the tensors each family stores.

Ids are part of the file format and never change meaning; a new family gets a new id, an entry
in ARCHITECTURES, a model module on the encoder side and an evaluator on the decoder side.
Every family is described by the same three header fields (hidden width, hidden layers, omega0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SIREN = 1
POLY = 2
IN_FEATURES = 2  # (x, y) coordinates
POLY_NEGATIVE_SLOPE = 0.2  #: LeakyReLU slope of every Poly-INR hidden layer (FORMAT.md §8.1)

Shapes = list[tuple[int, ...]]


def layer_sizes(hidden_width: int, hidden_layers: int, channels: int) -> list[tuple[int, int]]:
    """(in_features, out_features) of every linear layer of a SIREN, first to last."""
    dims = [IN_FEATURES] + [hidden_width] * hidden_layers + [channels]
    return [(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]


def _siren_shapes(hidden_width: int, hidden_layers: int, channels: int) -> Shapes:
    """weight (out, in) then bias (out,) of every layer."""
    shapes: Shapes = []
    for fan_in, fan_out in layer_sizes(hidden_width, hidden_layers, channels):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes


def _poly_shapes(hidden_width: int, hidden_layers: int, channels: int) -> Shapes:
    """The input layer (W, 2), (W,); per further hidden layer its coordinate map (W, 2), (W,) and its
    linear map (W, W), (W,); the output layer (C, W), (C,)."""
    w = hidden_width
    shapes: Shapes = [(w, IN_FEATURES), (w,)]
    for _ in range(hidden_layers - 1):
        shapes += [(w, IN_FEATURES), (w,), (w, w), (w,)]
    return shapes + [(channels, w), (channels,)]


@dataclass(frozen=True)
class Architecture:
    """One INR family of the format: its id, its name, and the shapes of its stored tensors."""

    arch_id: int
    name: str
    shapes: Callable[[int, int, int], Shapes]  # (hidden_width, hidden_layers, channels) -> shapes in file order
    uses_omega0: bool  # whether the header's omega0 field enters the network (else it is written as 1.0)


ARCHITECTURES: dict[int, Architecture] = {
    SIREN: Architecture(SIREN, "siren", _siren_shapes, uses_omega0=True),
    POLY: Architecture(POLY, "poly", _poly_shapes, uses_omega0=False),
}
NAMES = {a.arch_id: a.name for a in ARCHITECTURES.values()}
IDS = {a.name: a.arch_id for a in ARCHITECTURES.values()}


def tensor_shapes(arch: int, hidden_width: int, hidden_layers: int, channels: int) -> Shapes:
    """Shapes of the stored tensors in file order (weight then bias, layer by layer)."""
    return ARCHITECTURES[arch].shapes(hidden_width, hidden_layers, channels)


def parameter_count(arch: int, hidden_width: int, hidden_layers: int, channels: int) -> int:
    """Number of stored values of a network of this family with these dimensions."""
    total = 0
    for shape in tensor_shapes(arch, hidden_width, hidden_layers, channels):
        count = 1
        for n in shape:
            count *= n
        total += count
    return total


def multiply_adds(arch: int, hidden_width: int, hidden_layers: int, channels: int) -> int:
    """Multiply-adds of one forward evaluation at one coordinate: the sizes of the weight matrices."""
    return sum(s[0] * s[1] for s in tensor_shapes(arch, hidden_width, hidden_layers, channels) if len(s) == 2)
