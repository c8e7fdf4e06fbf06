"""An independent `.inr` reader written from bitstream/FORMAT.md alone (FORMAT.md sections 3-8,
versions 1 to 5): nothing imported from bitstream or codec.

It parses files with plain `struct`, `zlib`, numpy and constriction (none of bitstream's parsing code),
entropy-decodes all eight model kinds (ROW_CONTEXT, kind 4, ROW_PREDICT, kind 5, NEIGHBOUR_CONTEXT,
kind 6, and NEIGHBOUR_PREDICT, kind 7, included) and evaluates the network (SIREN, arch 1; Poly-INR,
arch 2; latent grids, arch 3, format versions 2 to 5, bilinear and bicubic) in float32 numpy.
tests/test_format_spec.py checks it against the reference. A new family or record kind is added here
from FORMAT.md, not from the code.
"""
from __future__ import annotations

import math
import struct
import zlib

import constriction
import numpy as np

MAGIC = b"\x89INR"
VERSIONS = (1, 2, 3, 4, 5)  # FORMAT.md 3 / 7 step 3 / 9
# 3: "readers accept architectures 1 and 2 in any version, architecture 3 only in versions 2 to 5"
ARCHS_OF_VERSION = {1: (1, 2), 2: (1, 2, 3), 3: (1, 2, 3), 4: (1, 2, 3), 5: (1, 2, 3)}
FIXED = "<HHBBHBfB"  # width, height, channels, arch, hidden_width, hidden_layers, omega0, init_id
FIXED_NAMES = ("width", "height", "channels", "arch", "hidden_width", "hidden_layers", "omega0", "init_id")
FIXED_RANGES = {"width": (1, 65535), "height": (1, 65535), "channels": (1, 3), "arch": (1, 3),
                "hidden_width": (1, 1024), "hidden_layers": (1, 32), "omega0": (0.1, 1000.0), "init_id": (0, 0)}
LATENT_FIELDS = "<BB"  # 4.1 latent-grid fields (arch 3 only): latent_levels, latent_channels
LATENT_RANGES = {"latent_levels": (1, 12), "latent_channels": (1, 8)}
SAMPLING_RANGE = (0, 1)  # 4.1: latent_sampling, versions 4 and 5 only, right after latent_channels: 0 bilinear, 1 bicubic
CUBIC_A = np.float32(-0.75)  # 8.1: Keys' cubic convolution
MAX_PARAMETERS = 2**22  # 7 step 9, the default limit on the weights (every stored value but the latent grids')
MAX_LATENTS_PER_PIXEL = 4  # 7 step 9: latent values <= max(MAX_PARAMETERS, 4 x min(width x height, MAX_PIXELS))
MAX_PIXELS = 89_478_485  # 7 step 9 and 8.5, the default
F16_MIN, F16_MAX = 2.0**-24, 65504.0
ZERO, LAPLACE, HISTOGRAM, SPARSE_LAPLACE, ROW_CONTEXT, ROW_PREDICT = 0, 1, 2, 3, 4, 5
NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT = 6, 7
PLAIN_KINDS = (ZERO, LAPLACE, HISTOGRAM, SPARSE_LAPLACE)
ROW_KINDS = (ROW_CONTEXT, ROW_PREDICT)  # 6.1: coded row by row, classes from the row above
NEIGHBOUR_KINDS = (NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT)  # 6.1: coded along anti-diagonals, classes from L, A, D
CLASS_KINDS = ROW_KINDS + NEIGHBOUR_KINDS  # 4.3: the records made of n_classes class models
# 3 / 4.3 / 9: kind 5 from version 3, kinds 6 and 7 from version 5 (kind 4 needs rank 3, so arch 3, so >= 2)
KIND_VERSION = {ROW_PREDICT: 3, NEIGHBOUR_CONTEXT: 5, NEIGHBOUR_PREDICT: 5}
SYMBOL_LIMIT = 32767  # 5 / 6.1: |q| <= 32767


class SpecError(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    # 4.3: LEB128, at most 6 bytes (non-minimal accepted), value at most 2**32 - 1
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise SpecError("header ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if value > 0xFFFFFFFF:
                raise SpecError("varint above 2**32 - 1")
            return value, pos
        if shift > 35:
            raise SpecError("varint too long")


def spec_grid_shapes(width: int, height: int, levels: int, channels: int) -> list[tuple[int, int, int]]:
    """4.1 / 4.2: grid l is (K, ceil(height / 2^l), ceil(width / 2^l)), finest first."""
    return [(channels, -(-height // 2**l), -(-width // 2**l)) for l in range(levels)]


def spec_shapes(arch: int, hidden_width: int, hidden_layers: int, channels: int, *, width: int = 0,
                height: int = 0, latent_levels: int = 0, latent_channels: int = 0) -> list[tuple[int, ...]]:
    w, shapes = hidden_width, []
    if arch == 2:  # FORMAT.md 4.2, Poly-INR: input layer, L-1 x (coordinate map, linear map), output
        shapes = [(w, 2), (w,)] + [(w, 2), (w,), (w, w), (w,)] * (hidden_layers - 1)
        return shapes + [(channels, w), (channels,)]
    if arch == 3:  # FORMAT.md 4.2, latent grids (finest first), then a ReLU MLP from G*K features
        shapes = spec_grid_shapes(width, height, latent_levels, latent_channels)
        dims = [latent_levels * latent_channels] + [hidden_width] * hidden_layers + [channels]
    else:
        dims = [2] + [hidden_width] * hidden_layers + [channels]
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes


def _check_range(name: str, value, lo, hi) -> None:
    if not lo <= value <= hi:
        raise SpecError(f"{name} out of range: {value}")


def spec_header(head: bytes, version: int) -> tuple[dict, list[tuple[int, ...]], int]:
    """FORMAT.md 4.1 and 7 step 8-9: the fixed (and latent-grid) fields, checked; (fields, shapes, records' offset)."""
    if len(head) < 14:
        raise SpecError("header ends inside the fixed fields")
    hdr = dict(zip(FIXED_NAMES, struct.unpack_from(FIXED, head, 0)))
    for name in FIXED_NAMES:  # in the order of 4.1
        if name == "omega0" and not math.isfinite(hdr[name]):
            raise SpecError("omega0 is not finite")
        _check_range(name, hdr[name], *FIXED_RANGES[name])
    if hdr["channels"] not in (1, 3):  # 7 step 8 and 8.4
        raise SpecError("channels must be 1 or 3")
    if hdr["arch"] in (2, 3) and hdr["omega0"] != 1.0:
        raise SpecError("omega0 must be 1.0 for this architecture")
    if hdr["arch"] not in ARCHS_OF_VERSION[version]:
        raise SpecError(f"architecture {hdr['arch']} needs format version 2")
    pos = 14
    extra = {}
    if hdr["arch"] == 3:
        if len(head) < 16:
            raise SpecError("header ends inside the latent-grid fields")
        extra = dict(zip(LATENT_RANGES, struct.unpack_from(LATENT_FIELDS, head, 14)))
        for name, value in extra.items():
            _check_range(name, value, *LATENT_RANGES[name])
        pos = 16
        hdr["latent_sampling"] = 0  # versions 2 and 3: bilinear, no field
        if version >= 4:  # versions 4 and 5
            if len(head) < 17:
                raise SpecError("header ends inside the latent-grid fields")
            hdr["latent_sampling"] = head[16]
            _check_range("latent_sampling", head[16], *SAMPLING_RANGE)
            pos = 17
    hdr.update(extra)
    shapes = spec_shapes(hdr["arch"], hdr["hidden_width"], hdr["hidden_layers"], hdr["channels"],
                         width=hdr["width"], height=hdr["height"], **extra)
    n_grids = hdr["latent_levels"] if hdr["arch"] == 3 else 0  # 4.2: the grids are the first G tensors
    latents = sum(math.prod(s) for s in shapes[:n_grids])
    if sum(math.prod(s) for s in shapes[n_grids:]) > MAX_PARAMETERS:  # 7 step 9, the weights
        raise SpecError("too many parameters")
    if latents > max(MAX_PARAMETERS, MAX_LATENTS_PER_PIXEL * min(hdr["width"] * hdr["height"], MAX_PIXELS)):
        raise SpecError("too many latent values")  # 7 step 9, the latent grids
    return hdr, shapes, pos


def _take(head: bytes, pos: int, fmt: str) -> tuple[tuple, int]:
    size = struct.calcsize(fmt)
    if pos + size > len(head):
        raise SpecError("header ends inside a tensor record")
    return struct.unpack_from(fmt, head, pos), pos + size


def _model_params(head: bytes, pos: int, rec: dict) -> int:
    """FORMAT.md 4.3 / 7 step 10.2: read the parameters of a plain model (kind 0..3) into rec."""
    kind = rec["kind"]
    if kind in (LAPLACE, HISTOGRAM, SPARSE_LAPLACE):
        (rec["max_abs"],), pos = _take(head, pos, "<H")
    if kind == LAPLACE:
        (rec["scale"],), pos = _take(head, pos, "<e")
    elif kind == SPARSE_LAPLACE:
        (rec["scale"], rec["p_zero"]), pos = _take(head, pos, "<eH")
    elif kind == HISTOGRAM:
        if rec["max_abs"] > 255:
            raise SpecError("histogram max_abs out of range")
        counts = []
        for _ in range(2 * rec["max_abs"] + 1):
            c, pos = _varint(head, pos)
            counts.append(c)
        rec["counts"] = counts
    return pos


def _check_model(rec: dict) -> None:
    """FORMAT.md 7 steps 10.5-10.7 for a plain model (kind 0..3)."""
    kind = rec["kind"]
    if kind != ZERO:
        _check_range("max_abs", rec["max_abs"], 1, 255 if kind == HISTOGRAM else 32767)
    if kind in (LAPLACE, SPARSE_LAPLACE) and not (math.isfinite(rec["scale"]) and F16_MIN <= rec["scale"] <= F16_MAX):
        raise SpecError("scale out of range")
    if kind == SPARSE_LAPLACE:
        _check_range("p_zero", rec["p_zero"], 1, 65535)
    if kind == HISTOGRAM and sum(rec["counts"]) == 0:
        raise SpecError("histogram counts all zero")


def spec_records(head: bytes, pos: int, shapes: list[tuple[int, ...]], version: int) -> list[dict]:
    """FORMAT.md 4.3 and 7 step 10 (one record per tensor shape)."""
    records = []
    for shape in shapes:
        rec = {"offset": pos}  # header offset of the record (for the corruption tests)
        (step, kind), pos = _take(head, pos, "<eB")
        rec.update(step=step, kind=kind)
        if kind in PLAIN_KINDS:
            pos = _model_params(head, pos, rec)
        if not (math.isfinite(step) and F16_MIN <= step <= F16_MAX):
            raise SpecError("step out of range")
        if kind not in PLAIN_KINDS + CLASS_KINDS:
            raise SpecError("model kind")
        # 7 step 10.4: kind 4 is checked as it is read, after the step check; kinds 5, 6 and 7 exactly as kind 4,
        # except that right after the step check a file whose version is below 3 (kind 5) or 5 (kinds 6, 7) is rejected
        if version < KIND_VERSION.get(kind, 1):
            raise SpecError(f"model kind {kind} needs format version {KIND_VERSION[kind]}")
        if kind in CLASS_KINDS and len(shape) != 3:  # 4.3: "rank-3 tensors only"
            raise SpecError(f"model kind {kind} on a tensor that is not rank 3")
        if kind in CLASS_KINDS:  # 4.3: n_classes (u8, 2..16), then n_classes class models of kind 0..3 (kinds 4 to 7 alike)
            (n_classes,), pos = _take(head, pos, "<B")
            _check_range("n_classes", n_classes, 2, 16)
            classes = []
            for _ in range(n_classes):
                sub = {"offset": pos}
                (class_kind,), pos = _take(head, pos, "<B")
                if class_kind not in PLAIN_KINDS:
                    raise SpecError("class model kind")
                sub["kind"] = class_kind
                pos = _model_params(head, pos, sub)
                _check_model(sub)
                classes.append(sub)
            if all(sub["kind"] == ZERO for sub in classes):  # 4.3 / 7 step 10.4: at least one not ZERO
                raise SpecError("every class model is ZERO")
            rec["classes"] = classes
        else:
            _check_model(rec)
        records.append(rec)
    if pos != len(head):
        raise SpecError("header trailing bytes")
    return records


def _laplace(rec: dict):
    m = rec["max_abs"]
    return constriction.stream.model.QuantizedLaplace(-m, m, 0.0, float(rec["scale"]))


def _decode_plain(decoder, rec: dict, n: int) -> np.ndarray:
    """FORMAT.md 6.1 / 6.2: n symbols of one plain model (a tensor, or a ROW_CONTEXT group) -> int32."""
    if rec["kind"] == ZERO or n == 0:
        return np.zeros(n, dtype=np.int32)
    if rec["kind"] == LAPLACE:
        return np.asarray(decoder.decode(_laplace(rec), n), dtype=np.int32)
    if rec["kind"] == SPARSE_LAPLACE:
        flags = constriction.stream.model.Bernoulli(1.0 - rec["p_zero"] / 65536, perfect=True)
        nonzero = np.asarray(decoder.decode(flags, n), dtype=np.int32) != 0
        sym = np.zeros(n, dtype=np.int32)
        if nonzero.any():
            values = np.asarray(decoder.decode(_laplace(rec), int(nonzero.sum())), dtype=np.int32)
            if np.any(values == 0):
                raise SpecError("zero where the flags say nonzero")
            sym[nonzero] = values
        return sym
    m = rec["max_abs"]
    probs = np.asarray(rec["counts"], dtype=np.float64)
    model = constriction.stream.model.Categorical(probs / probs.sum(), perfect=False)
    return np.asarray(decoder.decode(model, n), dtype=np.int32) - np.int32(m)


def spec_context_classes(above: np.ndarray, n_classes: int) -> np.ndarray:
    """FORMAT.md 6.1: class[c] = min(a[c-1] + 2 a[c] + a[c+1], n_classes - 1), a = |row above|, 0 off the ends."""
    a = [0] + [abs(int(v)) for v in above] + [0]
    return np.array([min(a[c] + 2 * a[c + 1] + a[c + 2], n_classes - 1) for c in range(len(above))], dtype=np.int64)


def spec_row_prediction(above) -> list[int]:
    """FORMAT.md 6.1 (ROW_PREDICT): pred[c] = floor((s[c-1] + 2 s[c] + s[c+1] + 2) / 4), s = the signed row above,
    0 off the ends; Python ints, whose // floors towards -inf."""
    s = [0] + [int(v) for v in above] + [0]
    return [(s[c] + 2 * s[c + 1] + s[c + 2] + 2) // 4 for c in range(len(above))]


def _decode_row_context(decoder, rec: dict, shape: tuple[int, ...]) -> np.ndarray:
    """FORMAT.md 6.1: channel by channel, row by row; per row, class k's group (left to right) for k = 0.. n-1.
    For ROW_PREDICT the groups are the differences d; the row is q = d + pred, checked against +-32767 once the
    whole row is decoded, and only then are the next row's classes and predictions computed."""
    channels, rows, cols = shape
    n_classes = len(rec["classes"])
    predict = rec["kind"] == ROW_PREDICT
    q = np.zeros(shape, dtype=np.int32)
    for ch in range(channels):
        for r in range(rows):
            above = q[ch, r - 1] if r > 0 else np.zeros(cols, dtype=np.int32)
            cls = spec_context_classes(above, n_classes)  # from |q| of the row above, for both kinds
            row = np.zeros(cols, dtype=np.int64)  # a ZERO class model (or an empty group) leaves its values 0
            for k, sub in enumerate(rec["classes"]):
                where = np.flatnonzero(cls == k)
                row[where] = _decode_plain(decoder, sub, where.size)
            if predict:
                row += np.array(spec_row_prediction(above), dtype=np.int64)
                if np.abs(row).max(initial=0) > SYMBOL_LIMIT:
                    raise SpecError(f"decoded a value beyond +-{SYMBOL_LIMIT} (channel {ch}, row {r})")
            q[ch, r] = row
    return q


def spec_neighbour_class(left: int, above: int, above_left: int, n_classes: int) -> int:
    """FORMAT.md 6.1 (NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT): class = min(2|L| + 2|A| + |D|, n_classes - 1)."""
    return min(2 * abs(left) + 2 * abs(above) + abs(above_left), n_classes - 1)


def spec_neighbour_prediction(left: int, above: int) -> int:
    """FORMAT.md 6.1 (NEIGHBOUR_PREDICT): pred = floor((L + A + 1) / 2); Python ints, whose // floors towards -inf."""
    return (left + above + 1) // 2


def spec_anti_diagonal(t: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """FORMAT.md 6.1: the positions (r, c = t - r) of anti-diagonal t of a rows x cols grid, top to bottom."""
    return [(r, t - r) for r in range(max(0, t - cols + 1), min(rows - 1, t) + 1)]


def spec_neighbours(grid, r: int, c: int) -> tuple[int, int, int]:
    """FORMAT.md 6.1: (L, A, D) = (q[r, c-1], q[r-1, c], q[r-1, c-1]), signed, 0 where an index is -1."""
    def at(i, j):
        return int(grid[i][j]) if i >= 0 and j >= 0 else 0
    return at(r, c - 1), at(r - 1, c), at(r - 1, c - 1)


def _decode_neighbour_context(decoder, rec: dict, shape: tuple[int, ...]) -> np.ndarray:
    """FORMAT.md 6.1: channel by channel; anti-diagonal t = r + c by anti-diagonal, t = 0 .. R + Q - 2; on each,
    class k's group (its positions top to bottom) for k = 0 .. n-1. For NEIGHBOUR_PREDICT the groups are the
    differences d; q = d + pred for the whole anti-diagonal, checked against +-32767, and only then are the next
    anti-diagonal's classes and predictions computed."""
    channels, rows, cols = shape
    n_classes = len(rec["classes"])
    predict = rec["kind"] == NEIGHBOUR_PREDICT
    q = np.zeros(shape, dtype=np.int32)
    for ch in range(channels):
        grid = [[0] * cols for _ in range(rows)]  # Python ints: the values decoded so far, 0 elsewhere
        for t in range(rows + cols - 1):
            positions = spec_anti_diagonal(t, rows, cols)
            neighbours = [spec_neighbours(grid, r, c) for r, c in positions]
            classes = [spec_neighbour_class(left, above, above_left, n_classes)
                       for left, above, above_left in neighbours]
            values = [0] * len(positions)  # a ZERO class model (or an empty group) leaves its values 0
            for k, sub in enumerate(rec["classes"]):
                members = [i for i, cls in enumerate(classes) if cls == k]  # top to bottom
                for i, v in zip(members, _decode_plain(decoder, sub, len(members))):
                    values[i] = int(v)
            if predict:
                values = [v + spec_neighbour_prediction(left, above) for v, (left, above, _) in zip(values, neighbours)]
                if any(abs(v) > SYMBOL_LIMIT for v in values):
                    raise SpecError(f"decoded a value beyond +-{SYMBOL_LIMIT} (channel {ch}, anti-diagonal {t})")
            for (r, c), v in zip(positions, values):
                grid[r][c] = v
        q[ch] = np.array(grid, dtype=np.int64).reshape(rows, cols)
    return q


def spec_decode(data: bytes) -> tuple[dict, list[np.ndarray]]:
    """Parse a whole file; return the header as a dict and the integer symbols (int32, one array per tensor)."""
    if len(data) == 0:
        raise SpecError("empty")
    if data[:4] != MAGIC[: len(data)]:
        raise SpecError("magic")
    if len(data) < 15:
        raise SpecError("truncated")
    version, head_len = struct.unpack_from("<BH", data, 4)
    if version not in VERSIONS:
        raise SpecError("version")
    if 7 + head_len + 8 > len(data):
        raise SpecError("truncated header")
    (pay_len,) = struct.unpack_from("<I", data, 7 + head_len)
    total = 7 + head_len + 4 + pay_len + 4
    if total > len(data):
        raise SpecError("truncated payload")
    if total != len(data):
        raise SpecError("length mismatch")
    (crc,) = struct.unpack_from("<I", data, total - 4)
    if zlib.crc32(data[: total - 4]) & 0xFFFFFFFF != crc:
        raise SpecError("crc")
    head = data[7 : 7 + head_len]
    payload = data[7 + head_len + 4 : total - 4]

    hdr, shapes, pos = spec_header(head, version)
    hdr["version"] = version
    records = spec_records(head, pos, shapes, version)
    hdr["records"] = records

    if len(payload) % 4:
        raise SpecError("payload not whole words")
    coded = any(r["kind"] != ZERO for r in records)
    if coded != (len(payload) > 0):
        raise SpecError("payload presence does not match the records")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    symbols = []
    for rec, shape in zip(records, shapes):
        if rec["kind"] in ROW_KINDS:
            sym = _decode_row_context(decoder, rec, shape)
        elif rec["kind"] in NEIGHBOUR_KINDS:
            sym = _decode_neighbour_context(decoder, rec, shape)
        else:
            sym = _decode_plain(decoder, rec, int(np.prod(shape)))
        symbols.append(sym.reshape(shape))
    if not decoder.maybe_exhausted():
        raise SpecError("payload has unused data")
    return hdr, symbols


def spec_read(data: bytes) -> tuple[dict, list[np.ndarray]]:
    """Parse a whole file; return the header as a dict and the dequantized float32 tensors (FORMAT.md 5)."""
    hdr, symbols = spec_decode(data)
    return hdr, [q.astype(np.float32) * np.float32(rec["step"]) for q, rec in zip(symbols, hdr["records"])]


def spec_axis(n: int) -> np.ndarray:
    idx = np.arange(n, dtype=np.float64)
    return ((2.0 * idx + 1.0) / n - 1.0).astype(np.float32)


def spec_sample(grid: np.ndarray, p: np.ndarray, sampling: int = 0) -> np.ndarray:
    """FORMAT.md 8.1: bilinear (0) or bicubic (1) sampling of a (K, R, Q) grid at (N, 2) float32 coordinates -> (N, K), float32."""
    if sampling == 1:
        return spec_sample_bicubic(grid, p)
    _, rows, cols = grid.shape
    one, two = np.float32(1.0), np.float32(2.0)
    x, y = p[:, 0], p[:, 1]
    u = np.clip(((x + one) * np.float32(cols) - one) / two, np.float32(0.0), np.float32(cols - 1))
    v = np.clip(((y + one) * np.float32(rows) - one) / two, np.float32(0.0), np.float32(rows - 1))
    c0, r0 = np.floor(u), np.floor(v)
    a, b = u - c0, v - r0
    not_a, not_b = c0 + one - u, r0 + one - v
    ic0, ir0 = c0.astype(np.int64), r0.astype(np.int64)
    ic1, ir1 = np.minimum(ic0 + 1, cols - 1), np.minimum(ir0 + 1, rows - 1)
    g = grid.transpose(1, 2, 0)  # (R, Q, K)
    out = (g[ir0, ic0] * (not_a * not_b)[:, None] + g[ir0, ic1] * (a * not_b)[:, None]
           + g[ir1, ic0] * (not_a * b)[:, None] + g[ir1, ic1] * (a * b)[:, None])
    assert out.dtype == np.float32
    return out


def spec_sample_bicubic(grid: np.ndarray, p: np.ndarray) -> np.ndarray:
    """FORMAT.md 8.1, latent_sampling = 1: Keys' cubic convolution over 4 x 4 cells, position not clamped,
    cell indices clamped to the grid."""
    _, rows, cols = grid.shape
    one, two, a = np.float32(1.0), np.float32(2.0), CUBIC_A

    def near(d):
        return ((a + two) * d - (a + np.float32(3.0))) * d * d + one

    def far(d):
        return ((a * d - np.float32(5.0) * a) * d + np.float32(8.0) * a) * d - np.float32(4.0) * a

    def axis(z, n):  # the 4 cell indices and weights along one axis
        pos = ((z + one) * np.float32(n) - one) / two
        first = np.floor(pos)
        s = pos - first
        weights = [far(s + one), near(s), near(one - s), far((one - s) + one)]
        cells = [np.clip(first.astype(np.int64) - 1 + i, 0, n - 1) for i in range(4)]
        return cells, weights

    cx, wx = axis(p[:, 0], cols)
    cy, wy = axis(p[:, 1], rows)
    g = grid.transpose(1, 2, 0)  # (R, Q, K)
    out = np.zeros((p.shape[0], grid.shape[0]), dtype=np.float32)
    for r, b in zip(cy, wy):
        for c, w in zip(cx, wx):
            out += g[r, c] * (b * w)[:, None]
    assert out.dtype == np.float32
    return out


def spec_lanczos_1d(n_out: int, n_in: int) -> np.ndarray:
    """FORMAT.md 8.5: the (n_out, n_in) matrix of Pillow's LANCZOS from n_in samples to n_out < n_in."""
    s = n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        c = (i + 0.5) * s
        first, stop = max(0, math.floor(c - 3 * s + 0.5)), min(n_in, math.floor(c + 3 * s + 0.5))
        for j in range(first, stop):
            x = (j + 0.5 - c) / s
            m[i, j] = 1.0 if x == 0 else (3 * math.sin(math.pi * x) * math.sin(math.pi * x / 3) / (math.pi * x) ** 2
                                          if abs(x) < 3 else 0.0)
        m[i] /= m[i].sum()
    return m


def spec_render(hdr: dict, weights: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """FORMAT.md 8.5: a width x height render; below the stored size along an axis, the network at
    min(stored, 8 x output) samples along it, clamped, Lanczos-filtered (columns, then rows)."""
    ew = width if width >= hdr["width"] else min(hdr["width"], 8 * width)
    eh = height if height >= hdr["height"] else min(hdr["height"], 8 * height)
    if (ew, eh) == (width, height):
        return spec_render_points(hdr, weights, width, height)
    y = np.clip(np.nan_to_num(spec_values(hdr, weights, ew, eh).astype(np.float64), nan=0.0), -1.0, 1.0)
    y = y.reshape(eh, ew, -1)
    if ew != width:
        y = np.einsum("oj,ijc->ioc", spec_lanczos_1d(width, ew), y)
    if eh != height:
        y = np.einsum("oi,ijc->ojc", spec_lanczos_1d(height, eh), y)
    return np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8)


def spec_render_points(hdr: dict, weights: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """The network at the pixel centres of a height x width grid (8.2, 8.3); uint8 (H, W, C)."""
    y = spec_values(hdr, weights, width, height)
    y = np.where(np.isnan(y), np.float32(0.0), y)  # 8.3: a NaN output becomes 0.0 (128); +-inf clamp
    v = np.rint((y + np.float32(1.0)) * np.float32(127.5))
    return np.clip(v, 0, 255).astype(np.uint8).reshape(height, width, -1)


def spec_values(hdr: dict, weights: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """Evaluate the network on a height x width pixel-centre grid, float32 throughout; (H x W, C)."""
    yy, xx = np.meshgrid(spec_axis(height), spec_axis(width), indexing="ij")
    p = np.stack([xx.reshape(-1), yy.reshape(-1)], axis=1)  # (N, 2): x first
    if hdr["arch"] == 2:  # FORMAT.md 8.1, Poly-INR
        h = p @ weights[0].T + weights[1]
        for k in range(2, len(weights) - 2, 4):
            a, a_b, w, b = weights[k : k + 4]
            z = (h * (p @ a.T + a_b)) @ w.T + b
            h = np.where(z >= 0, z, np.float32(0.2) * z)
    elif hdr["arch"] == 3:  # FORMAT.md 8.1, latent grids: sampled features, then a ReLU MLP
        levels = hdr["latent_levels"]
        sampling = hdr["latent_sampling"]
        h = np.concatenate([spec_sample(g, p, sampling) for g in weights[:levels]], axis=1)  # grid 0's K channels first
        mlp = weights[levels:]
        for k in range(0, len(mlp) - 2, 2):
            h = np.maximum(h @ mlp[k].T + mlp[k + 1], np.float32(0.0))
    else:
        omega0 = np.float32(hdr["omega0"])
        h = p
        for k in range(0, len(weights) - 2, 2):
            h = np.sin(omega0 * (h @ weights[k].T + weights[k + 1]))
    y = h @ weights[-2].T + weights[-1]
    assert y.dtype == np.float32
    return y
