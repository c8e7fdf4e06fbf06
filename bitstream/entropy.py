"""The entropy-coding boundary: integer tensors + per-tensor probability models <-> bytes.

Every tensor of quantized integers is coded with one of eight kinds of probability model whose
parameters travel in the header (see FORMAT.md): four plain ones, and for latent grids four context
models made of plain class models. The coder is constriction's range coder
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
#: latent grids only (rank-3 tensors, format versions 2 to 5): each symbol's model is one of up to
#: MAX_CONTEXT_CLASSES sub-models, picked by an integer context of the row above (context_classes)
ROW_CONTEXT = 4
#: latent grids only (format versions 3 to 5): ROW_CONTEXT's classes, but each symbol is coded as its difference
#: from an integer prediction made of the row above (row_prediction)
ROW_PREDICT = 5
#: latent grids only (format version 5): each symbol's class comes from its already decoded neighbours on
#: the left, above and above-left (neighbour_classes), the grid coded along anti-diagonals (FORMAT.md §6.1)
NEIGHBOUR_CONTEXT = 6
#: latent grids only (format version 5): NEIGHBOUR_CONTEXT's classes and order, each symbol coded as its
#: difference from an integer prediction made of its left and upper neighbours (neighbour_prediction)
NEIGHBOUR_PREDICT = 7
MODEL_NAMES = {ZERO: "zero", LAPLACE: "laplace", HISTOGRAM: "histogram", SPARSE_LAPLACE: "sparse-laplace",
               ROW_CONTEXT: "row-context", ROW_PREDICT: "row-predict", NEIGHBOUR_CONTEXT: "neighbour-context",
               NEIGHBOUR_PREDICT: "neighbour-predict"}
ROW_KINDS = (ROW_CONTEXT, ROW_PREDICT)  #: coded row by row, classes from the row above
NEIGHBOUR_KINDS = (NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT)  #: coded along anti-diagonals, classes from 3 neighbours
CONTEXT_KINDS = ROW_KINDS + NEIGHBOUR_KINDS  #: the kinds made of class models, for rank-3 tensors only
PREDICT_KINDS = (ROW_PREDICT, NEIGHBOUR_PREDICT)  #: the context kinds that code differences from a prediction
PLAIN_KINDS = (ZERO, LAPLACE, HISTOGRAM, SPARSE_LAPLACE)  #: the kinds a row-context sub-model may have
MIN_CONTEXT_CLASSES, MAX_CONTEXT_CLASSES = 2, 16
DEFAULT_CONTEXT_CLASSES = 6  #: what the encoder offers for the row kinds (measured on trained latents: benchmarks/DECISIONS.md)
NEIGHBOUR_CLASSES = 8  #: what the encoder offers for the neighbour kinds (measured on trained latents: benchmarks/DECISIONS.md)
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
    classes: tuple["TensorModel", ...] = ()  # CONTEXT_KINDS: the sub-model of each context class

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


class _Built:
    """A plain model with its constriction objects built once (a row-context tensor reuses them per row)."""

    def __init__(self, model: TensorModel):
        self.model = model
        self.values = model.constriction_model() if model.kind != ZERO else None
        self.flags = model.flag_model() if model.kind == SPARSE_LAPLACE else None


def _f16(x: float) -> float:
    return float(np.float16(x))


def context_classes(above: np.ndarray, n_classes: int) -> np.ndarray:
    """Context class of every symbol of a row (along the last axis) from the absolute values of the
    row above it (int64; zeros for the first row): min(|a[c-1]| + 2|a[c]| + |a[c+1]|, n_classes - 1),
    with 0 beyond the ends. Integer arithmetic only, so encoder and decoders agree on every machine."""
    padded = np.pad(above, [(0, 0)] * (above.ndim - 1) + [(1, 1)])
    return np.minimum(padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:], n_classes - 1)


def row_prediction(above: np.ndarray) -> np.ndarray:
    """ROW_PREDICT's prediction of every symbol of a row (along the last axis) from the signed values of
    the row above it (int64; zeros for the first row): floor((a[c-1] + 2 a[c] + a[c+1] + 2) / 4), with 0
    beyond the ends. Integers only (an arithmetic shift), identical on every machine."""
    padded = np.pad(above, [(0, 0)] * (above.ndim - 1) + [(1, 1)])
    return (padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:] + 2) >> 2


def _row_plan(symbols: np.ndarray, n_classes: int, predict: bool) -> tuple[np.ndarray, np.ndarray]:
    """(context class, coded value) of every symbol of a (channels, rows, columns) tensor: the value
    itself, or for ROW_PREDICT its difference from row_prediction."""
    values = symbols.astype(np.int64)
    above = np.zeros_like(values)
    above[:, 1:] = values[:, :-1]
    classes = context_classes(np.abs(above), n_classes)
    return classes, (values - row_prediction(above) if predict else values)


def neighbour_classes(left: np.ndarray, above: np.ndarray, above_left: np.ndarray, n_classes: int) -> np.ndarray:
    """NEIGHBOUR_CONTEXT's class of symbols from their neighbours' signed values (int64; 0 outside the
    grid): min(2|left| + 2|above| + |above-left|, n_classes - 1). Integers only."""
    return np.minimum(2 * np.abs(left) + 2 * np.abs(above) + np.abs(above_left), n_classes - 1)


def neighbour_prediction(left: np.ndarray, above: np.ndarray) -> np.ndarray:
    """NEIGHBOUR_PREDICT's prediction of symbols from their left and upper neighbours' signed values
    (int64; 0 outside the grid): floor((left + above + 1) / 2), an arithmetic shift."""
    return (left + above + 1) >> 1


def _neighbour_plan(symbols: np.ndarray, n_classes: int, predict: bool) -> tuple[np.ndarray, np.ndarray]:
    """(class, coded value) of every symbol of a (channels, rows, columns) tensor under the neighbour kinds."""
    values = symbols.astype(np.int64)
    padded = np.zeros((values.shape[0], values.shape[1] + 1, values.shape[2] + 1), dtype=np.int64)
    padded[:, 1:, 1:] = values
    left, above, above_left = padded[:, 1:, :-1], padded[:, :-1, 1:], padded[:, :-1, :-1]
    classes = neighbour_classes(left, above, above_left, n_classes)
    return classes, (values - neighbour_prediction(left, above) if predict else values)


def _context_plan(symbols: np.ndarray, n_classes: int, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """(class, coded value) of every symbol of a rank-3 tensor under context kind `kind`."""
    if kind in NEIGHBOUR_KINDS:
        return _neighbour_plan(symbols, n_classes, kind == NEIGHBOUR_PREDICT)
    return _row_plan(symbols, n_classes, kind == ROW_PREDICT)


def _neighbour_runs(classes: np.ndarray):
    """The coding order of one channel's (rows, columns) classes under the neighbour kinds, as runs
    (class, flat indices): anti-diagonal d = row + column by anti-diagonal, within one class by class,
    within a class by row."""
    rows, cols = classes.shape
    i, j = np.indices((rows, cols))
    diagonal = (i + j).reshape(-1)
    flat_classes = classes.reshape(-1)
    order = np.lexsort((i.reshape(-1), flat_classes, diagonal))
    key = diagonal[order] * (int(flat_classes.max(initial=0)) + 1) + flat_classes[order]
    starts = np.flatnonzero(np.diff(key, prepend=-1))
    ends = np.append(starts[1:], order.size)
    for start, end in zip(starts, ends):
        yield int(flat_classes[order[start]]), order[start:end]


def _check_context_symbols(symbols: np.ndarray, classes: np.ndarray, coded: np.ndarray, model: TensorModel) -> None:
    if np.abs(symbols).max(initial=0) > MAX_ABS_LIMIT or np.abs(coded).max(initial=0) > MAX_ABS_LIMIT:
        raise ValueError(f"a symbol or predicted difference exceeds the format's limit {MAX_ABS_LIMIT}")
    for k, sub in enumerate(model.classes):  # so that a coded tensor always codes something (FORMAT.md §6.1)
        if sub.kind != ZERO and not np.any(classes == k):
            raise ValueError(f"context class {k} has a model but no symbols; give it model ZERO")
        if sub.kind == ZERO and np.any(coded[classes == k]):
            raise ValueError(f"context class {k} has model ZERO but nonzero symbols")


def _encode_neighbour_context(encoder, symbols: np.ndarray, model: TensorModel) -> None:
    """Channel by channel, anti-diagonal by anti-diagonal, class by class: each run top to bottom."""
    classes, coded = _neighbour_plan(symbols, len(model.classes), model.kind == NEIGHBOUR_PREDICT)
    _check_context_symbols(symbols, classes, coded, model)
    built = [_Built(sub) for sub in model.classes]
    for channel in range(symbols.shape[0]):
        values = coded[channel].reshape(-1)
        for k, where in _neighbour_runs(classes[channel]):
            if built[k].model.kind != ZERO:
                _encode_plain(encoder, values[where], built[k])


def _encode_row_context(encoder, symbols: np.ndarray, model: TensorModel) -> None:
    """Channel by channel, row by row, class by class: each class's symbols of the row, left to right."""
    classes, coded = _row_plan(symbols, len(model.classes), model.kind == ROW_PREDICT)
    _check_context_symbols(symbols, classes, coded, model)
    built = [_Built(sub) for sub in model.classes]
    for channel in range(symbols.shape[0]):
        for row in range(symbols.shape[1]):
            values, where = coded[channel, row], classes[channel, row]
            for k, sub in enumerate(built):
                part = values[where == k]
                if part.size and sub.model.kind != ZERO:
                    _encode_plain(encoder, part, sub)


def _encode_plain(encoder, symbols: np.ndarray, built: _Built) -> None:
    model = built.model
    flat = symbols.reshape(-1).astype(np.int32)
    if model.kind == SPARSE_LAPLACE:
        nonzero = flat != 0
        encoder.encode(nonzero.astype(np.int32), built.flags)
        flat = flat[nonzero]
        if not flat.size:
            return
    elif model.kind == HISTOGRAM:
        flat = flat + np.int32(model.max_abs)
    encoder.encode(flat, built.values)


def _encode_one(encoder, symbols: np.ndarray, model: TensorModel) -> None:
    if model.kind == ZERO:
        return
    if model.kind in ROW_KINDS:
        _encode_row_context(encoder, symbols, model)
        return
    if model.kind in NEIGHBOUR_KINDS:
        _encode_neighbour_context(encoder, symbols, model)
        return
    _encode_plain(encoder, symbols, _Built(model))


def measure_bits(symbols: np.ndarray, model: TensorModel) -> int:
    """Bits the payload would take for `symbols` under `model` (coder overhead included)."""
    if model.kind == ZERO:
        return 0
    encoder = constriction.stream.queue.RangeEncoder()
    _encode_one(encoder, symbols, model)
    return int(encoder.num_bits())


def _laplace_bits_table(model: TensorModel) -> np.ndarray:
    """Code length in bits of every symbol -max_abs .. max_abs under a LAPLACE (or SPARSE_LAPLACE's value)
    model: the Laplace's mass of each unit bin, the outermost bins taking the tails (as constriction's
    quantized Laplace), at least 2^-24."""
    m, b = model.max_abs, float(model.scale)
    edges = np.arange(-m, m) + 0.5  # the 2m inner bin edges
    cdf = np.where(edges < 0, 0.5 * np.exp(np.minimum(edges, 0) / b), 1.0 - 0.5 * np.exp(-np.maximum(edges, 0) / b))
    mass = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    return -np.log2(np.maximum(mass, 2.0**-24))


def estimate_bits(symbols: np.ndarray, model: TensorModel) -> float:
    """About the bits `measure_bits` gives, from the model's probabilities instead of coding (the
    ideal code length; the range coder adds a few dozen bits a stream): for choosing among models."""
    if model.kind == ZERO:
        return 0.0
    if model.kind in CONTEXT_KINDS:
        classes, coded = _context_plan(symbols, len(model.classes), model.kind)
        return sum(estimate_bits(coded[classes == k], sub) for k, sub in enumerate(model.classes))
    flat = np.asarray(symbols).reshape(-1).astype(np.int64)
    bits = 0.0
    if model.kind == SPARSE_LAPLACE:
        zeros = int(np.count_nonzero(flat == 0))
        p_zero = model.p_zero / P_ZERO_ONE
        bits += -zeros * np.log2(p_zero) - (flat.size - zeros) * np.log2(1.0 - p_zero)
        flat = flat[flat != 0]
    counts = np.bincount(flat + model.max_abs, minlength=2 * model.max_abs + 1)
    if model.kind == HISTOGRAM:
        table = -np.log2(np.maximum(np.asarray(model.counts, dtype=np.float64), 1e-9) / sum(model.counts))
    else:
        table = _laplace_bits_table(model)
    used = counts > 0
    return bits + float(np.dot(counts[used], table[used]))


def varint(value: int) -> bytes:
    """LEB128: 7 bits a byte, least significant first, the high bit set on every byte but the last."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def header_bytes(model: TensorModel) -> int:
    """Bytes the model's parameters take in the header, the kind byte excluded (FORMAT.md §5)."""
    if model.kind == ZERO:
        return 0
    if model.kind in CONTEXT_KINDS:  # the class count, then every sub-model's kind byte and parameters
        return 1 + sum(1 + header_bytes(sub) for sub in model.classes)
    if model.kind == LAPLACE:
        return 4
    if model.kind == SPARSE_LAPLACE:
        return 6
    return 2 + sum(len(varint(c)) for c in model.counts)


def _context_model(symbols: np.ndarray, n_classes: int, kinds, kind: int) -> tuple[TensorModel | None, int]:
    """(model of context kind `kind`, its bits: payload + header) with the best plain sub-model per class,
    measured on each class's symbols apart; (None, 0) when a predicted difference exceeds MAX_ABS_LIMIT."""
    predict = kind in PREDICT_KINDS
    classes, coded = _context_plan(symbols, n_classes, kind)
    if predict and np.abs(coded).max(initial=0) > MAX_ABS_LIMIT:
        return None, 0
    subs, bits = [], 8 * (1 + n_classes)  # the class count and every sub-model's kind byte
    plain = PLAIN_KINDS if kinds is None else tuple(k for k in kinds if k in PLAIN_KINDS)
    for k in range(n_classes):
        part = coded[classes == k]
        sub = choose_model(part, kinds=plain) if part.size else TensorModel(ZERO)
        subs.append(sub)
        bits += estimate_bits(part, sub) + 8 * header_bytes(sub)
    return TensorModel(kind, classes=tuple(subs)), bits


def choose_model(symbols: np.ndarray, *, kinds=None) -> TensorModel:
    """Pick the model that makes this tensor smallest (header parameters + payload), by its estimated
    code length (estimate_bits).

    `kinds` limits the candidates (ZERO is always allowed); None means every model. ROW_CONTEXT and
    ROW_PREDICT, NEIGHBOUR_CONTEXT and NEIGHBOUR_PREDICT are candidates for rank-3 tensors (latent grids) only.
    """
    symbols = np.asarray(symbols)
    if symbols.ndim == 3 and np.any(symbols) and (kinds is None or any(k in kinds for k in CONTEXT_KINDS)):
        plain = choose_model(symbols.reshape(-1), kinds=kinds)
        best = (estimate_bits(symbols, plain) + 8 * header_bytes(plain), plain)
        for kind in CONTEXT_KINDS:
            if kinds is None or kind in kinds:
                n_classes = NEIGHBOUR_CLASSES if kind in NEIGHBOUR_KINDS else DEFAULT_CONTEXT_CLASSES
                model, bits = _context_model(symbols, n_classes, kinds, kind)
                if model is not None and bits < best[0]:
                    best = (bits, model)
        return best[1]
    flat = symbols.reshape(-1).astype(np.int64)
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
    costs = [estimate_bits(flat, m) + 8 * header_bytes(m) for m in candidates]
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


def _decode_plain(decoder, built: _Built, size: int) -> np.ndarray:
    """`size` symbols of a plain (non-context) model from the range decoder, as int32."""
    kind, max_abs = built.model.kind, built.model.max_abs
    if kind == ZERO:
        return np.zeros(size, dtype=np.int32)
    if kind == SPARSE_LAPLACE:
        nonzero = np.asarray(decoder.decode(built.flags, size), dtype=np.int32) != 0
        if nonzero.shape != (size,):
            raise InrFormatError(f"payload decoded to {nonzero.size} flags, expected {size}")
        flat = np.zeros(size, dtype=np.int32)
        count = int(nonzero.sum())
        if count:
            values = np.asarray(decoder.decode(built.values, count), dtype=np.int32)
            if values.shape != (count,) or np.any(values == 0):
                raise InrFormatError("payload decoded a zero where the flags say nonzero")
            flat[nonzero] = values
        return flat
    flat = np.asarray(decoder.decode(built.values, size), dtype=np.int32)
    if flat.shape != (size,):
        raise InrFormatError(f"payload decoded to {flat.size} symbols, expected {size}")
    if kind == HISTOGRAM:
        flat = flat - np.int32(max_abs)
    return flat


#: a row or anti-diagonal of at most this many positions is decoded symbol by symbol with Python integers, which
#: costs less than numpy's per-call overhead there; a longer one is grouped by class with numpy. A grid whose
#: rows (row kinds) or anti-diagonals (neighbour kinds) are all this short is kept in a Python list while it is
#: decoded. Either way the symbols are read in the order of FORMAT.md §6.1, so the values are the same, and the
#: cost of a context-coded grid is about proportional to its number of values whatever its shape
#: (benchmarks/results/robustness/shape_bombs.md measures it).
SHORT_STEP = 48

_ZERO_FLAGGED = "payload decoded a zero where the flags say nonzero"


def _plan_classes(model: TensorModel) -> tuple[list[_Built], list[tuple]]:
    """Each class model built once, and as (kind, values model, flags model, symbol offset) for the scalar loops."""
    built = [_Built(sub) for sub in model.classes]
    plans = [(b.model.kind, b.values, b.flags, b.model.max_abs if b.model.kind == HISTOGRAM else 0) for b in built]
    return built, plans


def _decode_one(decode, plan: tuple) -> int:
    """One symbol with one plain class model (a group of one)."""
    kind, model, flags, offset = plan
    if kind == ZERO:
        return 0
    if kind == SPARSE_LAPLACE:
        if not decode(flags):
            return 0
        value = decode(model)
        if value == 0:
            raise InrFormatError(_ZERO_FLAGGED)
        return value
    return decode(model) - offset


def _decode_short(decode, plans: list[tuple], classes: list[int]) -> list[int]:
    """The values of a short row or anti-diagonal (Python ints), given each position's class: class k's group
    with class model k, for k = 0, 1, ... in turn, each group in position order (FORMAT.md §6.1); one symbol
    at a time, which for a group is the same as decoding it at once."""
    m = len(classes)
    if m == 1:
        return [_decode_one(decode, plans[classes[0]])]
    values = [0] * m
    order = sorted(range(m), key=classes.__getitem__)  # stable: by class, within a class by position
    i = 0
    while i < m:
        p = order[i]
        k = classes[p]
        kind, model, flags, offset = plans[k]
        if kind == SPARSE_LAPLACE:  # all of the group's flags, then its nonzero values
            j = i + 1
            while j < m and classes[order[j]] == k:
                j += 1
            for q in [q for q in order[i:j] if decode(flags)]:
                value = decode(model)
                if value == 0:
                    raise InrFormatError(_ZERO_FLAGGED)
                values[q] = value
            i = j
            continue
        if kind != ZERO:
            values[p] = decode(model) - offset
        i += 1
    return values


def _decode_groups(decoder, built: list[_Built], classes: np.ndarray) -> np.ndarray:
    """The values of a long row or anti-diagonal (int64), given each position's class (int64): as
    _decode_short, with one coder call per class present (two for SPARSE_LAPLACE)."""
    values = np.zeros(classes.size, dtype=np.int64)
    counts = np.bincount(classes, minlength=len(built))
    present = np.flatnonzero(counts)
    if present.size == 1:
        if built[present[0]].model.kind != ZERO:
            values[:] = _decode_plain(decoder, built[present[0]], classes.size)
        return values
    order = np.argsort(classes, kind="stable")
    start = 0
    for k in present:
        count = int(counts[k])
        sub = built[k]
        if sub.model.kind != ZERO:
            values[order[start:start + count]] = _decode_plain(decoder, sub, count)
        start += count
    return values


def _beyond(kind: int, channel: int, where: str) -> InrFormatError:
    return InrFormatError(f"{MODEL_NAMES[kind]} tensor decoded a value beyond ±{MAX_ABS_LIMIT} (channel {channel}, {where})")


def _decode_chain(decode, plans: list[tuple], top: int, predict: bool, length: int, kind: int, channel: int,
                  step: str) -> list[int]:
    """One channel of a grid that is a single row or column, where every row (row kinds) or anti-diagonal
    (neighbour kinds) is one symbol: its class is min(2|previous|, n_classes - 1) and its prediction
    (previous + 1) >> 1 under both kinds' rules (FORMAT.md §6.1 with the zeros outside the grid), so the
    tensor is decoded in one loop over Python integers."""
    out = [0] * length
    previous = 0
    for t in range(length):
        k = 2 * previous if previous >= 0 else -2 * previous
        sub_kind, model, flags, offset = plans[k if k < top else top]
        if sub_kind == ZERO:
            value = 0
        elif sub_kind == SPARSE_LAPLACE:
            if decode(flags):
                value = decode(model)
                if value == 0:
                    raise InrFormatError(_ZERO_FLAGGED)
            else:
                value = 0
        else:
            value = decode(model) - offset
        if predict:
            value += (previous + 1) >> 1
            if not -MAX_ABS_LIMIT <= value <= MAX_ABS_LIMIT:
                raise _beyond(kind, channel, f"{step} {t}")
        out[t] = value
        previous = value
    return out


def _check_range(values: list[int], kind: int, channel: int, where: str) -> None:
    if max(values) > MAX_ABS_LIMIT or min(values) < -MAX_ABS_LIMIT:
        raise _beyond(kind, channel, where)


def _decode_uniform(decode, plan: tuple, m: int) -> list[int]:
    """m symbols of one class model (a row or anti-diagonal whose positions all have the same class)."""
    kind, model, flags, offset = plan
    if kind == ZERO:
        return [0] * m
    if kind == SPARSE_LAPLACE:
        nonzero = [decode(flags) for _ in range(m)]
        values = [0] * m
        for p in range(m):
            if nonzero[p]:
                value = decode(model)
                if value == 0:
                    raise InrFormatError(_ZERO_FLAGGED)
                values[p] = value
        return values
    return [decode(model) - offset for _ in range(m)]


def _thin_diagonals(decode, plans, top: int, predict: bool, rows: int, cols: int, kind: int, channel: int) -> list:
    """A channel of a neighbour-kind grid whose anti-diagonals are all short (few rows or few columns) in
    a flat Python list laid out as in _decode_neighbour_context."""
    padded = [0] * ((rows + 1) * (cols + 1))
    down = cols + 1  # from a position to the one below it
    for d in range(rows + cols - 1):
        lo = d - cols + 1 if d >= cols else 0
        hi = d if d < rows else rows - 1
        bases = range(d + lo * cols, d + hi * cols + 1, cols)  # above-left neighbours, top to bottom
        classes = []
        for b in bases:
            left, above, corner = padded[b + down], padded[b + 1], padded[b]
            k = (2 * (left if left >= 0 else -left) + 2 * (above if above >= 0 else -above)
                 + (corner if corner >= 0 else -corner))
            classes.append(k if k < top else top)
        m = len(classes)
        if m == 1 or classes.count(classes[0]) == m:
            values = _decode_uniform(decode, plans[classes[0]], m)
        else:
            values = _decode_short(decode, plans, classes)
        if predict:
            for i, b in enumerate(bases):
                value = values[i] + ((padded[b + down] + padded[b + 1] + 1) >> 1)
                if not -MAX_ABS_LIMIT <= value <= MAX_ABS_LIMIT:
                    raise _beyond(kind, channel, f"anti-diagonal {d}")
                padded[b + down + 1] = value
        else:
            for i, b in enumerate(bases):
                padded[b + down + 1] = values[i]
    return padded


def _short_rows(decode, plans, top: int, predict: bool, rows: int, cols: int, kind: int, channel: int) -> list:
    """A channel of a row-kind grid with few columns, in Python integers (the classes and predictions of §6.1)."""
    out = []
    s = [0] * (cols + 2)  # the row above, signed, with the zeros beyond both ends
    a = [0] * (cols + 2)  # its absolute values
    span = range(cols)
    for row in range(rows):
        classes = []
        for c in span:
            k = a[c] + 2 * a[c + 1] + a[c + 2]
            classes.append(k if k < top else top)
        if classes.count(classes[0]) == cols:
            values = _decode_uniform(decode, plans[classes[0]], cols)
        else:
            values = _decode_short(decode, plans, classes)
        if predict:
            for c in span:
                value = values[c] + ((s[c] + 2 * s[c + 1] + s[c + 2] + 2) >> 2)
                if not -MAX_ABS_LIMIT <= value <= MAX_ABS_LIMIT:
                    raise _beyond(kind, channel, f"row {row}")
                values[c] = value
        out.append(values)
        s[1:-1] = values
        a[1:-1] = [v if v >= 0 else -v for v in values]
    return out


def _decode_row_context(decoder, model: TensorModel, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of _encode_row_context: row by row, each row's classes (and for ROW_PREDICT its
    prediction) from the row decoded above it."""
    channels, rows, cols = shape
    out = np.zeros(shape, dtype=np.int32)
    top = len(model.classes) - 1
    predict = model.kind == ROW_PREDICT
    built, plans = _plan_classes(model)
    decode = decoder.decode
    for channel in range(channels):
        if cols == 1:
            out[channel, :, 0] = _decode_chain(decode, plans, top, predict, rows, model.kind, channel, "row")
        elif cols <= SHORT_STEP:
            out[channel] = _short_rows(decode, plans, top, predict, rows, cols, model.kind, channel)
        else:
            out[channel] = _long_rows(decoder, built, top, predict, rows, cols, model.kind, channel)
    return out


def _long_rows(decoder, built, top: int, predict: bool, rows: int, cols: int, kind: int, channel: int) -> np.ndarray:
    """A channel of a row-kind grid with many columns: each row's classes and prediction with numpy."""
    out = np.zeros((rows, cols), dtype=np.int64)
    above = np.zeros(cols, dtype=np.int64)
    for row in range(rows):
        a = np.abs(above)
        classes = 2 * a
        classes[1:] += a[:-1]
        classes[:-1] += a[1:]
        np.minimum(classes, top, out=classes)
        values = _decode_groups(decoder, built, classes)
        if predict:
            pred = 2 * above + 2
            pred[1:] += above[:-1]
            pred[:-1] += above[1:]
            values += pred >> 2
            if np.abs(values).max() > MAX_ABS_LIMIT:
                raise _beyond(kind, channel, f"row {row}")
        out[row] = values
        above = values
    return out


def _decode_neighbour_context(decoder, model: TensorModel, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of _encode_neighbour_context: anti-diagonal by anti-diagonal, each one's classes (and for
    NEIGHBOUR_PREDICT its prediction) from the symbols decoded before it.

    The grid is decoded in a flat (rows + 1) x (cols + 1) array whose row 0 and column 0 are the zeros outside
    it: q[r, c] is at (r + 1) * (cols + 1) + c + 1, so an anti-diagonal's positions are `cols` apart and its
    above-left, above, left neighbours and itself are at b, b + 1, b + cols + 1 and b + cols + 2 with
    b = d + r * cols."""
    channels, rows, cols = shape
    out = np.zeros(shape, dtype=np.int32)
    top = len(model.classes) - 1
    predict = model.kind == NEIGHBOUR_PREDICT
    built, plans = _plan_classes(model)
    decode = decoder.decode
    for channel in range(channels):
        if rows == 1 or cols == 1:  # every anti-diagonal is one position: left (one row) or above (one column)
            chain = _decode_chain(decode, plans, top, predict, rows * cols, model.kind, channel, "anti-diagonal")
            out[channel] = np.asarray(chain, dtype=np.int32).reshape(rows, cols)
            continue
        if min(rows, cols) <= SHORT_STEP:  # every anti-diagonal is short: a Python list
            padded = _thin_diagonals(decode, plans, top, predict, rows, cols, model.kind, channel)
            out[channel] = np.asarray(padded, dtype=np.int32).reshape(rows + 1, cols + 1)[1:, 1:]
            continue
        padded = np.zeros((rows + 1) * (cols + 1), dtype=np.int64)
        for d in range(rows + cols - 1):
            lo, hi = max(0, d - cols + 1), min(rows - 1, d)  # rows r = lo..hi, top to bottom; c = d - r
            first = d + lo * cols
            stop = first + (hi - lo) * cols + 1
            if hi - lo < SHORT_STEP:  # a short anti-diagonal near a corner: Python integers
                lefts = padded[first + cols + 1:stop + cols + 1:cols].tolist()
                aboves = padded[first + 1:stop + 1:cols].tolist()
                corners = padded[first:stop:cols].tolist()
                classes = [min(2 * abs(lf) + 2 * abs(ab) + abs(co), top) for lf, ab, co in zip(lefts, aboves, corners)]
                values = _decode_short(decode, plans, classes)
                if predict:
                    values = [v + ((lf + ab + 1) >> 1) for v, lf, ab in zip(values, lefts, aboves)]
                    _check_range(values, model.kind, channel, f"anti-diagonal {d}")
                padded[first + cols + 2:stop + cols + 2:cols] = values
                continue
            above_left = padded[first:stop:cols]
            above = padded[first + 1:stop + 1:cols]
            left = padded[first + cols + 1:stop + cols + 1:cols]
            classes = 2 * np.abs(left) + 2 * np.abs(above) + np.abs(above_left)
            np.minimum(classes, top, out=classes)
            values = _decode_groups(decoder, built, classes)
            if predict:
                values += (left + above + 1) >> 1
                if np.abs(values).max() > MAX_ABS_LIMIT:
                    raise _beyond(model.kind, channel, f"anti-diagonal {d}")
            padded[first + cols + 2:stop + cols + 2:cols] = values
        out[channel] = np.asarray(padded, dtype=np.int32).reshape(rows + 1, cols + 1)[1:, 1:]
    return out


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
            if model.kind in ROW_KINDS:
                tensors.append(_decode_row_context(decoder, model, shape))
            elif model.kind in NEIGHBOUR_KINDS:
                tensors.append(_decode_neighbour_context(decoder, model, shape))
            else:
                tensors.append(_decode_plain(decoder, _Built(model), int(np.prod(shape, dtype=np.int64))).reshape(shape))
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
