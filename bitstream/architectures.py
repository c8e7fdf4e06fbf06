"""The registry of INR families: stable ids, names, and the tensors each family stores.

Ids are part of the file format and never change meaning; a new family gets a new id, an entry
in ARCHITECTURES, a model module on the encoder side and an evaluator on the decoder side.
Every family is described by the same three header fields (hidden width, hidden layers, omega0);
the latent-grid family adds two (its levels and channels per level, FORMAT.md §4.3), and its
latent grids' sizes follow from the image size in the header.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SIREN = 1
POLY = 2
LATENT = 3
FORMAT_VERSIONS = (1, 2, 3, 4, 5)  #: every version this package reads (FORMAT.md §9); the newest is the last
IN_FEATURES = 2  # (x, y) coordinates
POLY_NEGATIVE_SLOPE = 0.2  #: LeakyReLU slope of every Poly-INR hidden layer (FORMAT.md §8.1)
MAX_LATENT_LEVELS = 12  #: latent grids of the latent-grid family: level l has 1/2**l of the image side
MAX_LATENT_CHANNELS = 8  #: channels of every latent grid
#: how a latent grid is sampled between its cell centres (FORMAT.md §8.1): the header's latent_sampling field
BILINEAR = 0
BICUBIC = 1
SAMPLING_NAMES = {BILINEAR: "bilinear", BICUBIC: "bicubic"}
SAMPLING_IDS = {name: i for i, name in SAMPLING_NAMES.items()}
#: cells a sampling mode reads along each axis (a lookup costs taps**2 multiply-adds per latent channel)
SAMPLING_TAPS = {BILINEAR: 2, BICUBIC: 4}

Shapes = list[tuple[int, ...]]


@dataclass(frozen=True)
class LatentGrid:
    """The latent grids of a latent-grid file: image size, number of levels, channels per level, and
    how they are sampled (BILINEAR or BICUBIC)."""

    width: int
    height: int
    levels: int
    channels: int
    sampling: int = BILINEAR

    def level_shapes(self) -> Shapes:
        """(channels, rows, columns) of every level, finest first: level l is ceil(side / 2**l)."""
        return [(self.channels, -(-self.height // 2**l), -(-self.width // 2**l)) for l in range(self.levels)]

    def values(self) -> int:
        """Number of latent values in all levels."""
        return sum(c * h * w for c, h, w in self.level_shapes())


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


def _siren_family_shapes(hidden_width: int, hidden_layers: int, channels: int, grid: LatentGrid | None) -> Shapes:
    return _siren_shapes(hidden_width, hidden_layers, channels)


def _poly_shapes(hidden_width: int, hidden_layers: int, channels: int, grid: LatentGrid | None = None) -> Shapes:
    """The input layer (W, 2), (W,); per further hidden layer its coordinate map (W, 2), (W,) and its
    linear map (W, W), (W,); the output layer (C, W), (C,)."""
    w = hidden_width
    shapes: Shapes = [(w, IN_FEATURES), (w,)]
    for _ in range(hidden_layers - 1):
        shapes += [(w, IN_FEATURES), (w,), (w, w), (w,)]
    return shapes + [(channels, w), (channels,)]


def _latent_shapes(hidden_width: int, hidden_layers: int, channels: int, grid: LatentGrid | None) -> Shapes:
    """Every latent grid (channels, rows, columns), finest first; then the synthesis MLP's weight
    (out, in) and bias (out,) per layer, from levels x grid channels inputs to the image channels."""
    if grid is None:
        raise ValueError("the latent-grid family needs its grid dimensions")
    dims = [grid.levels * grid.channels] + [hidden_width] * hidden_layers + [channels]
    shapes: Shapes = list(grid.level_shapes())
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes


@dataclass(frozen=True)
class Architecture:
    """One INR family of the format: its id, its name, and the shapes of its stored tensors."""

    arch_id: int
    name: str
    shapes: Callable[[int, int, int, LatentGrid | None], Shapes]  # (hidden_width, hidden_layers, channels, grid)
    uses_omega0: bool  # whether the header's omega0 field enters the network (else it is written as 1.0)
    has_grid: bool = False  # whether the header carries latent-grid fields (levels, channels per level)
    first_version: int = 1  # the first format version that may hold it (FORMAT.md §9); every later one may too


ARCHITECTURES: dict[int, Architecture] = {
    SIREN: Architecture(SIREN, "siren", _siren_family_shapes, uses_omega0=True),
    POLY: Architecture(POLY, "poly", _poly_shapes, uses_omega0=False),
    LATENT: Architecture(LATENT, "latent", _latent_shapes, uses_omega0=False, has_grid=True, first_version=2),
}
NAMES = {a.arch_id: a.name for a in ARCHITECTURES.values()}
IDS = {a.name: a.arch_id for a in ARCHITECTURES.values()}


def tensor_shapes(arch: int, hidden_width: int, hidden_layers: int, channels: int,
                  grid: LatentGrid | None = None) -> Shapes:
    """Shapes of the stored tensors in file order (weight then bias, layer by layer; latent grids first)."""
    return ARCHITECTURES[arch].shapes(hidden_width, hidden_layers, channels, grid)


def parameter_count(arch: int, hidden_width: int, hidden_layers: int, channels: int,
                    grid: LatentGrid | None = None) -> int:
    """Number of stored values of a network of this family with these dimensions (latents included)."""
    total = 0
    for shape in tensor_shapes(arch, hidden_width, hidden_layers, channels, grid):
        count = 1
        for n in shape:
            count *= n
        total += count
    return total


def multiply_adds(arch: int, hidden_width: int, hidden_layers: int, channels: int,
                  grid: LatentGrid | None = None) -> int:
    """Multiply-adds of one forward evaluation at one coordinate: the sizes of the weight matrices,
    plus taps**2 per latent channel and level for the latent-grid family's lookups (4 bilinear, 16 bicubic)."""
    shapes = tensor_shapes(arch, hidden_width, hidden_layers, channels, grid)
    has_grid = grid is not None and ARCHITECTURES[arch].has_grid
    lookups = SAMPLING_TAPS[grid.sampling] ** 2 * grid.levels * grid.channels if has_grid else 0
    return sum(s[0] * s[1] for s in shapes if len(s) == 2) + lookups
