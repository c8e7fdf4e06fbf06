"""The entropy-coding boundary: integer tensors + per-tensor probability models <-> bytes.

Every tensor of quantized integers is coded with one of three probability models whose
parameters travel in the header (see FORMAT.md). The coder is constriction's range coder
(``constriction.stream.queue``); its compressed words are stored as little-endian uint32.
"""
from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from .errors import InrFormatError

ZERO = 0  #: every symbol is 0; nothing is stored in the payload
LAPLACE = 1  #: constriction QuantizedLaplace(mean 0, scale) on [-max_abs, max_abs]
HISTOGRAM = 2  #: Categorical over [-max_abs, max_abs] with stored integer counts
MODEL_NAMES = {ZERO: "zero", LAPLACE: "laplace", HISTOGRAM: "histogram"}

MAX_ABS_LIMIT = 32767  #: largest |symbol| any model accepts
HISTOGRAM_MAX_ABS = 255  #: histograms are only offered for alphabets up to 511 symbols
_SCALE_FACTORS = (0.6, 0.75, 0.9, 1.0, 1.15, 1.35, 1.7)


@dataclass(frozen=True)
class TensorModel:
    """Probability model of one tensor's symbols; all fields travel in the header."""

    kind: int
    max_abs: int = 0
    scale: float = 0.0  # LAPLACE only; a float16 value
    counts: tuple[int, ...] = ()  # HISTOGRAM only; 2*max_abs+1 counts, symbol -max_abs first

    def constriction_model(self):
        """The constriction model for this tensor (symbols already offset for histograms)."""
        if self.kind == LAPLACE:
            return constriction.stream.model.QuantizedLaplace(
                -self.max_abs, self.max_abs, 0.0, float(self.scale)
            )
        if self.kind == HISTOGRAM:
            probs = np.asarray(self.counts, dtype=np.float64)
            probs = probs / probs.sum()
            return constriction.stream.model.Categorical(probs, perfect=False)
        raise ValueError(f"model kind {self.kind} has no constriction model")


def _f16(x: float) -> float:
    return float(np.float16(x))


def _encode_one(encoder, symbols: np.ndarray, model: TensorModel) -> None:
    if model.kind == ZERO:
        return
    flat = symbols.reshape(-1).astype(np.int32)
    if model.kind == HISTOGRAM:
        flat = flat + np.int32(model.max_abs)
    encoder.encode(flat, model.constriction_model())


def measure_bits(symbols: np.ndarray, model: TensorModel) -> int:
    """Bits the payload would take for `symbols` under `model` (coder overhead included)."""
    if model.kind == ZERO:
        return 0
    encoder = constriction.stream.queue.RangeEncoder()
    _encode_one(encoder, symbols, model)
    return int(encoder.num_bits())


def header_bytes(model: TensorModel) -> int:
    """Bytes the model's parameters take in the header (see FORMAT.md)."""
    from .header import model_param_size  # local: header imports this module

    return model_param_size(model)


def choose_model(symbols: np.ndarray) -> TensorModel:
    """Pick the model that makes this tensor smallest (header parameters + payload), by measuring."""
    flat = np.asarray(symbols).reshape(-1).astype(np.int64)
    max_abs = int(np.abs(flat).max()) if flat.size else 0
    if max_abs == 0:
        return TensorModel(ZERO)
    if max_abs > MAX_ABS_LIMIT:
        raise ValueError(f"quantized value {max_abs} exceeds the format's limit {MAX_ABS_LIMIT}")
    candidates = []
    mean_abs = max(float(np.abs(flat).mean()), 1e-3)
    for factor in _SCALE_FACTORS:
        scale = _f16(max(mean_abs * factor, 0.05))
        candidates.append(TensorModel(LAPLACE, max_abs, scale=scale))
    if max_abs <= HISTOGRAM_MAX_ABS:
        counts = np.bincount(flat + max_abs, minlength=2 * max_abs + 1)
        candidates.append(TensorModel(HISTOGRAM, max_abs, counts=tuple(int(c) for c in counts)))
    costs = [measure_bits(flat, m) + 8 * header_bytes(m) for m in candidates]
    return candidates[int(np.argmin(costs))]


def encode_tensors(tensors: list[np.ndarray], models: list[TensorModel]) -> bytes:
    """Range-code all tensors, in order, into one payload of little-endian uint32 words."""
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, model in zip(tensors, models):
        _encode_one(encoder, symbols, model)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_tensors(payload: bytes, models: list[TensorModel], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of :func:`encode_tensors`. Raises InrFormatError if the payload does not fit."""
    if len(payload) % 4:
        raise InrFormatError(f"payload length {len(payload)} is not a multiple of 4")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    tensors = []
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        for model, shape in zip(models, shapes):
            size = int(np.prod(shape, dtype=np.int64))
            if model.kind == ZERO:
                tensors.append(np.zeros(shape, dtype=np.int32))
                continue
            flat = np.asarray(decoder.decode(model.constriction_model(), size), dtype=np.int32)
            if model.kind == HISTOGRAM:
                flat = flat - np.int32(model.max_abs)
            tensors.append(flat.reshape(shape))
        leftover = decoder.maybe_exhausted()
    except InrFormatError:
        raise
    except Exception as exc:  # constriction reports corrupt data with assorted exception types
        raise InrFormatError(f"payload could not be entropy-decoded: {exc}") from None
    if not leftover:
        raise InrFormatError("payload has unused data after the last tensor")
    return tensors
