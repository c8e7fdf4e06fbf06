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
SPARSE_LAPLACE = 3  #: Bernoulli(nonzero) flag per symbol, then LAPLACE over the nonzero symbols
MODEL_NAMES = {ZERO: "zero", LAPLACE: "laplace", HISTOGRAM: "histogram", SPARSE_LAPLACE: "sparse-laplace"}
P_ZERO_ONE = 65536  #: SPARSE_LAPLACE stores P(symbol == 0) as p_zero / 65536

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
    p_zero: int = 0  # SPARSE_LAPLACE only; P(symbol == 0) * 65536, in 1..65535

    def constriction_model(self):
        """The constriction model for this tensor (symbols already offset for histograms)."""
        if self.kind in (LAPLACE, SPARSE_LAPLACE):
            return constriction.stream.model.QuantizedLaplace(
                -self.max_abs, self.max_abs, 0.0, float(self.scale)
            )
        if self.kind == HISTOGRAM:
            probs = np.asarray(self.counts, dtype=np.float64)
            probs = probs / probs.sum()
            return constriction.stream.model.Categorical(probs, perfect=False)
        raise ValueError(f"model kind {self.kind} has no constriction model")

    def flag_model(self):
        """SPARSE_LAPLACE: the Bernoulli model of the nonzero flags."""
        # perfect=True is constriction's current default, stated so it prints no deprecation warning on stderr
        return constriction.stream.model.Bernoulli(1.0 - self.p_zero / P_ZERO_ONE, perfect=True)


def _f16(x: float) -> float:
    return float(np.float16(x))


def _encode_one(encoder, symbols: np.ndarray, model: TensorModel) -> None:
    if model.kind == ZERO:
        return
    flat = symbols.reshape(-1).astype(np.int32)
    if model.kind == SPARSE_LAPLACE:
        nonzero = flat != 0
        encoder.encode(nonzero.astype(np.int32), model.flag_model())
        flat = flat[nonzero]
        if not flat.size:
            return
    elif model.kind == HISTOGRAM:
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


def choose_model(symbols: np.ndarray, *, kinds=None) -> TensorModel:
    """Pick the model that makes this tensor smallest (header parameters + payload), by measuring.

    `kinds` limits the candidates (ZERO is always allowed); None means every model.
    """
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
    zeros = int(np.count_nonzero(flat == 0))
    if zeros * 10 >= flat.size:  # worth a zero flag only with at least 10% zeros
        p_zero = min(P_ZERO_ONE - 1, max(1, round(P_ZERO_ONE * zeros / flat.size)))
        nz_mean = max(float(np.abs(flat[flat != 0]).mean()), 1e-3)
        for factor in _SCALE_FACTORS:
            scale = _f16(max(nz_mean * factor, 0.05))
            candidates.append(TensorModel(SPARSE_LAPLACE, max_abs, scale=scale, p_zero=p_zero))
    if max_abs <= HISTOGRAM_MAX_ABS:
        counts = np.bincount(flat + max_abs, minlength=2 * max_abs + 1)
        candidates.append(TensorModel(HISTOGRAM, max_abs, counts=tuple(int(c) for c in counts)))
    if kinds is not None:
        candidates = [m for m in candidates if m.kind in kinds]
    costs = [measure_bits(flat, m) + 8 * header_bytes(m) for m in candidates]
    return candidates[int(np.argmin(costs))]


def encode_tensors(tensors: list[np.ndarray], models: list[TensorModel]) -> bytes:
    """Range-code all tensors, in order, into one payload of little-endian uint32 words."""
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, model in zip(tensors, models):
        _encode_one(encoder, symbols, model)
    return encoder.get_compressed().astype("<u4").tobytes()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def decode_tensors(payload: bytes, models: list[TensorModel], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of :func:`encode_tensors`. Raises InrFormatError if the payload does not fit.

    Work is bounded by the number of symbols the header declares (which the header parser
    has already limited); any failure of the range decoder becomes an InrFormatError.
    """
    if len(models) != len(shapes):
        raise InrFormatError(f"header has {len(models)} tensor records for {len(shapes)} tensors")
    if len(payload) % 4:
        raise InrFormatError(f"payload length {len(payload)} is not a multiple of 4")
    coded = sum(1 for model in models if model.kind != ZERO)
    if coded and not payload:
        raise InrFormatError(f"payload is empty but {coded} tensors are entropy-coded")
    if not coded and payload:
        raise InrFormatError(f"payload has {len(payload)} bytes but no tensor is entropy-coded")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    tensors = []
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        for model, shape in zip(models, shapes):
            size = int(np.prod(shape, dtype=np.int64))
            if model.kind == ZERO:
                tensors.append(np.zeros(shape, dtype=np.int32))
                continue
            if model.kind == SPARSE_LAPLACE:
                nonzero = np.asarray(decoder.decode(model.flag_model(), size), dtype=np.int32) != 0
                if nonzero.shape != (size,):
                    raise InrFormatError(f"payload decoded to {nonzero.size} flags, expected {size}")
                flat = np.zeros(size, dtype=np.int32)
                count = int(nonzero.sum())
                if count:
                    values = np.asarray(decoder.decode(model.constriction_model(), count), dtype=np.int32)
                    if values.shape != (count,) or np.any(values == 0):
                        raise InrFormatError("payload decoded a zero where the flags say nonzero")
                    flat[nonzero] = values
                tensors.append(flat.reshape(shape))
                continue
            flat = np.asarray(decoder.decode(model.constriction_model(), size), dtype=np.int32)
            if flat.shape != (size,):
                raise InrFormatError(f"payload decoded to {flat.size} symbols, expected {size}")
            if model.kind == HISTOGRAM:
                flat = flat - np.int32(model.max_abs)
            tensors.append(flat.reshape(shape))
        leftover = decoder.maybe_exhausted()
    except InrFormatError:
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # noqa: BLE001 - constriction reports corrupt data with assorted types,
        # and a Rust panic surfaces as pyo3's PanicException, which derives from BaseException
        raise InrFormatError(f"payload could not be entropy-decoded: {_one_line(exc)}") from None
    if not leftover:
        raise InrFormatError("payload has unused data after the last tensor")
    return tensors
