"""The `.inr` header: a declarative table of fields with their types and valid ranges.

Every field is checked on write and on read; a bad value raises InrFormatError naming the field.
All multi-byte values are little-endian.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from . import architectures
from .entropy import (
    HISTOGRAM, HISTOGRAM_MAX_ABS, LAPLACE, MAX_ABS_LIMIT, MAX_CONTEXT_CLASSES, MIN_CONTEXT_CLASSES, MODEL_NAMES,
    CONTEXT_KINDS, NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT, P_ZERO_ONE, PLAIN_KINDS, ROW_PREDICT, SPARSE_LAPLACE, ZERO,
    TensorModel, varint,
)
from .errors import InrFormatError

MAX_SIDE = 65535
MAX_HIDDEN_WIDTH = 1024
MAX_HIDDEN_LAYERS = 32
DEFAULT_MAX_PARAMETERS = 1 << 22  #: largest network a decoder accepts unless told otherwise (latent grids apart)
#: a latent-grid file's grids may hold max(max_parameters, this x min(width x height, max_pixels)) values: the
#: encoder's grids hold at most 4/3 per pixel per channel of a level (a little more for thin images), so 4 admits
#: up to 2 channels per level at any size (3 channels of 12 levels just miss it; FORMAT.md §7 step 9)
DEFAULT_MAX_LATENTS_PER_PIXEL = 4
#: the declared pixels that earn latent values: at most this many (Pillow's decompression-bomb limit, the same
#: number as codec.decoding.DEFAULT_MAX_PIXELS, which decoders pass as DecodeLimits.max_pixels)
DEFAULT_MAX_PIXELS = 89_478_485
_MAX_COUNT = (1 << 32) - 1


@dataclass(frozen=True)
class Field:
    """One fixed header field: name, struct code, and the inclusive range of valid values."""

    name: str
    code: str
    low: float
    high: float


# The fixed part of the header, in file order. Never reorder: append new fields in a new version.
FIELDS = (
    Field("width", "H", 1, MAX_SIDE),
    Field("height", "H", 1, MAX_SIDE),
    Field("channels", "B", 1, 3),
    Field("arch", "B", min(architectures.ARCHITECTURES), max(architectures.ARCHITECTURES)),
    Field("hidden_width", "H", 1, MAX_HIDDEN_WIDTH),
    Field("hidden_layers", "B", 1, MAX_HIDDEN_LAYERS),
    Field("omega0", "f", 0.1, 1000.0),
    Field("init_id", "B", 0, 0),
)
_FIXED = struct.Struct("<" + "".join(f.code for f in FIELDS))
# Fields that follow the fixed part only in files of a family with latent grids (FORMAT.md §4.3).
GRID_FIELDS = (
    Field("latent_levels", "B", 1, architectures.MAX_LATENT_LEVELS),
    Field("latent_channels", "B", 1, architectures.MAX_LATENT_CHANNELS),
)
_GRID = struct.Struct("<" + "".join(f.code for f in GRID_FIELDS))
#: version 4 adds one latent-grid field after those two: how the grids are sampled (0 bilinear, 1 bicubic)
SAMPLING_FIELD = Field("latent_sampling", "B", min(architectures.SAMPLING_NAMES), max(architectures.SAMPLING_NAMES))
SAMPLING_VERSION = 4  #: the first format version whose latent-grid files carry SAMPLING_FIELD


@dataclass(frozen=True)
class TensorRecord:
    """Per-tensor header record: the quantization step and the probability model."""

    step: float  # a float16 value; dequantized weight = float32(symbol) * float32(step)
    model: TensorModel


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs to rebuild the network, besides the coded symbols."""

    width: int
    height: int
    channels: int
    arch: int
    hidden_width: int
    hidden_layers: int
    omega0: float  # a float32 value
    init_id: int
    tensors: tuple[TensorRecord, ...]
    latent_levels: int = 0  # latent-grid family only (else 0): number of grids, level l at 1/2**l of the side
    latent_channels: int = 0  # latent-grid family only (else 0): channels of every grid
    latent_sampling: int = architectures.BILINEAR  # latent-grid family only: BILINEAR (versions 2-5) or BICUBIC (4-5)

    def grid(self) -> architectures.LatentGrid | None:
        """The latent grids' dimensions, for a family that has them (else None)."""
        if not architectures.ARCHITECTURES[self.arch].has_grid:
            return None
        return architectures.LatentGrid(self.width, self.height, self.latent_levels, self.latent_channels,
                                        self.latent_sampling)

    def tensor_shapes(self) -> list[tuple[int, ...]]:
        return architectures.tensor_shapes(self.arch, self.hidden_width, self.hidden_layers, self.channels, self.grid())

    def to_dict(self) -> dict:
        """A JSON-ready description (what `inr-info` prints)."""
        shapes = self.tensor_shapes()
        return {
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "arch": architectures.NAMES[self.arch],
            "arch_id": self.arch,
            "hidden_width": self.hidden_width,
            "hidden_layers": self.hidden_layers,
            "omega0": self.omega0,
            "init_id": self.init_id,
            **({"latent_levels": self.latent_levels, "latent_channels": self.latent_channels,
                "latent_sampling": architectures.SAMPLING_NAMES[self.latent_sampling],
                "latent_values": self.grid().values()} if self.grid() is not None else {}),
            "parameters": architectures.parameter_count(self.arch, self.hidden_width, self.hidden_layers, self.channels,
                                                        self.grid()),
            "tensors": [{"shape": list(shape), "step": rec.step, **_model_dict(rec.model)}
                        for shape, rec in zip(shapes, self.tensors)],
        }


def _model_dict(model: TensorModel) -> dict:
    """A model's kind and parameters for `to_dict` (a context model lists its classes' models)."""
    if model.kind in CONTEXT_KINDS:
        return {"model": MODEL_NAMES[model.kind], "classes": [_model_dict(sub) for sub in model.classes]}
    return {
        "model": MODEL_NAMES[model.kind],
        "max_abs": model.max_abs,
        **({"scale": model.scale} if model.kind in (LAPLACE, SPARSE_LAPLACE) else {}),
        **({"p_zero": model.p_zero / P_ZERO_ONE} if model.kind == SPARSE_LAPLACE else {}),
    }


def _check(name: str, value, low, high) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InrFormatError(f"header field '{name}' = {value} is not a finite number")
    if not low <= value <= high:
        raise InrFormatError(f"header field '{name}' = {value} is out of range {low}..{high}")


def _check_fixed(values) -> None:
    for f, v in zip(FIELDS, values):
        _check(f.name, v, f.low, f.high)
    named = dict(zip((f.name for f in FIELDS), values))
    if named["channels"] not in (1, 3):
        raise InrFormatError(f"header field 'channels' = {named['channels']} is not 1 (grayscale) or 3 (RGB)")
    family = architectures.ARCHITECTURES[named["arch"]]
    if not family.uses_omega0 and named["omega0"] != 1.0:
        raise InrFormatError(f"header field 'omega0' = {named['omega0']} must be 1.0 for architecture '{family.name}'")


#: format version -> the architecture ids it may hold (FORMAT.md §9): version 2 added the latent-grid
#: family, whose header has extra fields; files of the other families stay version 1
VERSION_ARCHS = {v: tuple(a.arch_id for a in architectures.ARCHITECTURES.values() if a.first_version <= v)
                 for v in architectures.FORMAT_VERSIONS}
#: model kind -> the first format version that may use it (version 3 added ROW_PREDICT, version 5 the
#: neighbour kinds)
KIND_VERSION = {ROW_PREDICT: 3, NEIGHBOUR_CONTEXT: 5, NEIGHBOUR_PREDICT: 5}


def lowest_version(arch: int) -> int:
    """The lowest format version that can hold a file of architecture `arch`."""
    return min(v for v, archs in VERSION_ARCHS.items() if arch in archs)


def file_version(header: "Header") -> int:
    """The format version writers give a file: the lowest that holds its architecture, every model kind
    and its grids' sampling (bicubic needs version 4's latent_sampling field)."""
    kinds = [rec.model.kind for rec in header.tensors]
    sampling = SAMPLING_VERSION if header.latent_sampling != architectures.BILINEAR else 1
    return max([lowest_version(header.arch), sampling] + [KIND_VERSION.get(k, 1) for k in kinds])


class _Reader:
    """Bounds-checked reading of a header section."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise InrFormatError(f"header ends inside {what}")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def varint(self, what: str) -> int:
        value = shift = 0
        while True:
            (byte,) = self.take("B", what)
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if shift > 35:
                raise InrFormatError(f"{what} is not a valid varint")


def _check_record(index: int, step: float, model: TensorModel, shape: tuple[int, ...]) -> None:
    where = f"tensor {index}"
    _check(f"{where} step", step, 2.0**-24, 65504.0)
    if model.kind not in MODEL_NAMES:
        raise InrFormatError(f"header field '{where} model' = {model.kind} is not a known model (0..{max(MODEL_NAMES)})")
    if model.kind in CONTEXT_KINDS:
        if len(shape) != 3:
            raise InrFormatError(f"{where} has a {MODEL_NAMES[model.kind]} model, which only latent grids (rank-3 tensors) "
                                 "may have")
        _check(f"{where} classes", len(model.classes), MIN_CONTEXT_CLASSES, MAX_CONTEXT_CLASSES)
        for k, sub in enumerate(model.classes):
            if sub.kind not in PLAIN_KINDS:
                raise InrFormatError(f"header field '{where} class {k} model' = {sub.kind} is not a plain model (0..3)")
            _check_model(f"{where} class {k}", sub)
        if all(sub.kind == ZERO for sub in model.classes):
            raise InrFormatError(f"{where} has a {MODEL_NAMES[model.kind]} model whose classes are all zero (that is model 0)")
        return
    _check_model(where, model)


def _check_model(where: str, model: TensorModel) -> None:
    """Range checks of a plain model's parameters."""
    if model.kind == ZERO:
        return
    _check(f"{where} max_abs", model.max_abs, 1, HISTOGRAM_MAX_ABS if model.kind == HISTOGRAM else MAX_ABS_LIMIT)
    if model.kind in (LAPLACE, SPARSE_LAPLACE):
        _check(f"{where} scale", model.scale, 2.0**-24, 65504.0)
        if model.kind == SPARSE_LAPLACE:
            _check(f"{where} p_zero", model.p_zero, 1, P_ZERO_ONE - 1)
    else:
        if len(model.counts) != 2 * model.max_abs + 1:
            raise InrFormatError(f"{where} histogram has {len(model.counts)} counts, expected {2 * model.max_abs + 1}")
        if any(c < 0 or c > _MAX_COUNT for c in model.counts) or sum(model.counts) == 0:
            raise InrFormatError(f"{where} histogram counts are out of range or all zero")


def _read_params(reader: _Reader, i: int, kind: int) -> TensorModel:
    """A plain model's parameters (after its kind byte); the kind itself is checked by the caller."""
    max_abs, scale, counts, p_zero = 0, 0.0, (), 0
    if kind in (LAPLACE, HISTOGRAM, SPARSE_LAPLACE):
        (max_abs,) = reader.take("H", f"tensor {i} record")
    if kind == LAPLACE:
        (scale,) = reader.take("e", f"tensor {i} record")
    elif kind == SPARSE_LAPLACE:
        scale, p_zero = reader.take("eH", f"tensor {i} record")
    elif kind == HISTOGRAM:
        if max_abs > HISTOGRAM_MAX_ABS:
            raise InrFormatError(f"header field 'tensor {i} max_abs' = {max_abs} is out of range 1..{HISTOGRAM_MAX_ABS}")
        counts = tuple(reader.varint(f"tensor {i} histogram") for _ in range(2 * max_abs + 1))
    return TensorModel(kind, max_abs, scale=scale, counts=counts, p_zero=p_zero)


def pack_header(header: Header) -> bytes:
    """Serialize and validate a header. Raises InrFormatError for a value the format cannot hold."""
    values = [getattr(header, f.name) for f in FIELDS]
    _check_fixed(values)
    out = bytearray(_FIXED.pack(*values))
    if architectures.ARCHITECTURES[header.arch].has_grid:
        grid_values = [getattr(header, f.name) for f in GRID_FIELDS]
        for f, v in zip(GRID_FIELDS, grid_values):
            _check(f.name, v, f.low, f.high)
        out += _GRID.pack(*grid_values)
        if file_version(header) >= SAMPLING_VERSION:
            _check(SAMPLING_FIELD.name, header.latent_sampling, SAMPLING_FIELD.low, SAMPLING_FIELD.high)
            out += struct.pack("<" + SAMPLING_FIELD.code, header.latent_sampling)
    elif header.latent_levels or header.latent_channels or header.latent_sampling:
        raise InrFormatError(f"architecture '{architectures.NAMES[header.arch]}' has no latent grids")
    shapes = header.tensor_shapes()
    if len(header.tensors) != len(shapes):
        raise InrFormatError(f"header has {len(header.tensors)} tensor records, architecture needs {len(shapes)}")
    for i, (rec, shape) in enumerate(zip(header.tensors, shapes)):
        _check_record(i, rec.step, rec.model, shape)
        if float(np.float16(rec.step)) != rec.step:
            raise InrFormatError(f"tensor {i} step {rec.step} is not a float16 value")
        out += struct.pack("<eB", rec.step, rec.model.kind)
        if rec.model.kind in CONTEXT_KINDS:
            out += struct.pack("<B", len(rec.model.classes))
            for sub in rec.model.classes:
                out += struct.pack("<B", sub.kind) + _pack_params(i, sub)
        else:
            out += _pack_params(i, rec.model)
    return bytes(out)


def _pack_params(index: int, model: TensorModel) -> bytes:
    """A plain model's parameters as stored after its kind byte."""
    if float(np.float16(model.scale)) != model.scale:
        raise InrFormatError(f"tensor {index} scale {model.scale} is not a float16 value")
    out = b""
    if model.kind != ZERO:
        out += struct.pack("<H", model.max_abs)
    if model.kind == LAPLACE:
        out += struct.pack("<e", model.scale)
    elif model.kind == SPARSE_LAPLACE:
        out += struct.pack("<eH", model.scale, model.p_zero)
    elif model.kind == HISTOGRAM:
        out += b"".join(varint(c) for c in model.counts)
    return out


def latent_limit(width: int, height: int, *, max_parameters: int = DEFAULT_MAX_PARAMETERS,
                 max_latents_per_pixel: int = DEFAULT_MAX_LATENTS_PER_PIXEL, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The most latent values a latent-grid file of a width x height image may store (FORMAT.md §7 step 9):
    max(max_parameters, max_latents_per_pixel x min(width x height, max_pixels))."""
    return max(max_parameters, max_latents_per_pixel * min(width * height, max_pixels))


def check_network_size(arch: int, hidden_width: int, hidden_layers: int, channels: int,
                       grid: architectures.LatentGrid | None = None, *, max_parameters: int = DEFAULT_MAX_PARAMETERS,
                       max_latents_per_pixel: int = DEFAULT_MAX_LATENTS_PER_PIXEL,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """FORMAT.md §7 step 9, from the fixed fields alone: the network's weights (every stored value but the
    latent grids') must be at most max_parameters, and the latent grids' values at most
    latent_limit(width, height, ...). InrFormatError otherwise. An encoder can ask with the same arguments
    whether a decoder with these (by default, the default) limits will accept a file (see network_fits)."""
    latents = grid.values() if grid is not None and architectures.ARCHITECTURES[arch].has_grid else 0
    weights = architectures.parameter_count(arch, hidden_width, hidden_layers, channels, grid) - latents
    if weights > max_parameters:
        what = "synthesis network" if latents else "network"
        raise InrFormatError(f"{what} has {weights} parameters, more than the decoder's limit {max_parameters}")
    if latents:
        limit = latent_limit(grid.width, grid.height, max_parameters=max_parameters,
                             max_latents_per_pixel=max_latents_per_pixel, max_pixels=max_pixels)
        if latents > limit:
            raise InrFormatError(
                f"latent grids hold {latents} values, more than the decoder's limit {limit} for a {grid.width}x"
                f"{grid.height} image (max({max_parameters} parameters, {max_latents_per_pixel} per pixel of at most "
                f"{max_pixels} pixels))")


def network_fits(arch: int, hidden_width: int, hidden_layers: int, channels: int,
                 grid: architectures.LatentGrid | None = None, **limits) -> bool:
    """Whether check_network_size accepts these dimensions (default limits unless given)."""
    try:
        check_network_size(arch, hidden_width, hidden_layers, channels, grid, **limits)
    except InrFormatError:
        return False
    return True


def unpack_header(data: bytes, *, max_parameters: int = DEFAULT_MAX_PARAMETERS, version: int = 5,
                  max_latents_per_pixel: int = DEFAULT_MAX_LATENTS_PER_PIXEL,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Parse and validate a header section of a file of format `version`. Checks the network size
    (check_network_size) before anything is allocated."""
    reader = _Reader(data)
    values = reader.take(_FIXED.format[1:], "the fixed fields")
    _check_fixed(values)
    fixed = dict(zip((f.name for f in FIELDS), values))
    if fixed["arch"] not in VERSION_ARCHS[version]:
        raise InrFormatError(f"architecture '{architectures.NAMES[fixed['arch']]}' needs format version "
                             f"{lowest_version(fixed['arch'])}, the file says version {version}")
    grid = None
    if architectures.ARCHITECTURES[fixed["arch"]].has_grid:
        grid_values = reader.take(_GRID.format[1:], "the latent-grid fields")
        for f, v in zip(GRID_FIELDS, grid_values):
            _check(f.name, v, f.low, f.high)
        fixed.update(zip((f.name for f in GRID_FIELDS), grid_values))
        if version >= SAMPLING_VERSION:
            (sampling,) = reader.take(SAMPLING_FIELD.code, "the latent-grid fields")
            _check(SAMPLING_FIELD.name, sampling, SAMPLING_FIELD.low, SAMPLING_FIELD.high)
            fixed[SAMPLING_FIELD.name] = sampling
        grid = architectures.LatentGrid(fixed["width"], fixed["height"], *grid_values,
                                        fixed.get(SAMPLING_FIELD.name, architectures.BILINEAR))
    dims = (fixed["arch"], fixed["hidden_width"], fixed["hidden_layers"], fixed["channels"], grid)
    check_network_size(*dims, max_parameters=max_parameters, max_latents_per_pixel=max_latents_per_pixel,
                       max_pixels=max_pixels)
    shapes = architectures.tensor_shapes(*dims)
    records = []
    for i, shape in enumerate(shapes):
        step, kind = reader.take("eB", f"tensor {i} record")
        if kind in CONTEXT_KINDS:  # FORMAT.md §7 step 10: each part checked as soon as it is read
            _check(f"tensor {i} step", step, 2.0**-24, 65504.0)
            if KIND_VERSION.get(kind, 1) > version:
                raise InrFormatError(f"tensor {i} model '{MODEL_NAMES[kind]}' needs format version "
                                     f"{KIND_VERSION[kind]}, the file says version {version}")
            if len(shape) != 3:
                _check_record(i, step, TensorModel(kind), shape)
            (n_classes,) = reader.take("B", f"tensor {i} record")
            _check(f"tensor {i} classes", n_classes, MIN_CONTEXT_CLASSES, MAX_CONTEXT_CLASSES)
            subs = []
            for k in range(n_classes):
                (sub_kind,) = reader.take("B", f"tensor {i} record")
                if sub_kind not in PLAIN_KINDS:
                    raise InrFormatError(f"header field 'tensor {i} class {k} model' = {sub_kind} is not a plain model (0..3)")
                subs.append(_read_params(reader, i, sub_kind))
                _check_model(f"tensor {i} class {k}", subs[-1])
            model = TensorModel(kind, classes=tuple(subs))
        else:
            model = _read_params(reader, i, kind)
        _check_record(i, step, model, shape)
        records.append(TensorRecord(step, model))
    if reader.pos != len(data):
        raise InrFormatError(f"header has {len(data) - reader.pos} unexpected bytes after the last tensor record")
    return Header(**fixed, tensors=tuple(records))
