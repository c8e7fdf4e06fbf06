"""An independent `.inr` reader written from bitstream/FORMAT.md alone.

It parses files with plain `struct`, `zlib`, numpy and constriction (none of bitstream's parsing
code), entropy-decodes all five model kinds (ROW_CONTEXT, kind 4, included), evaluates the
network (SIREN, arch 1; Poly-INR, arch 2; latent grids, arch 3, format version 2) in float32
numpy and checks that it agrees with the reference: dequantized weights bit-for-bit, rendered
pixels within one level (and equal for >= 99%).
"""
from __future__ import annotations

import math
import struct
import zlib

import constriction
import numpy as np
import pytest

# --- the reader: FORMAT.md sections 3-8 (versions 1 and 2), nothing imported from bitstream or codec ---

MAGIC = b"\x89INR"
VERSIONS = (1, 2)  # FORMAT.md 3 / 9
ARCHS_OF_VERSION = {1: (1, 2), 2: (1, 2, 3)}  # 9: version 2 = version 1 + architecture 3
FIXED = "<HHBBHBfB"  # width, height, channels, arch, hidden_width, hidden_layers, omega0, init_id
FIXED_NAMES = ("width", "height", "channels", "arch", "hidden_width", "hidden_layers", "omega0", "init_id")
FIXED_RANGES = {"width": (1, 65535), "height": (1, 65535), "channels": (1, 3), "arch": (1, 3),
                "hidden_width": (1, 1024), "hidden_layers": (1, 32), "omega0": (0.1, 1000.0), "init_id": (0, 0)}
LATENT_FIELDS = "<BB"  # 4.1 latent-grid fields (arch 3 only): latent_levels, latent_channels
LATENT_RANGES = {"latent_levels": (1, 12), "latent_channels": (1, 8)}
MAX_PARAMETERS = 2**22  # 7 step 9, the default limit
F16_MIN, F16_MAX = 2.0**-24, 65504.0
ZERO, LAPLACE, HISTOGRAM, SPARSE_LAPLACE, ROW_CONTEXT = 0, 1, 2, 3, 4
PLAIN_KINDS = (ZERO, LAPLACE, HISTOGRAM, SPARSE_LAPLACE)


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
    hdr.update(extra)
    shapes = spec_shapes(hdr["arch"], hdr["hidden_width"], hdr["hidden_layers"], hdr["channels"],
                         width=hdr["width"], height=hdr["height"], **extra)
    if sum(math.prod(s) for s in shapes) > MAX_PARAMETERS:  # 7 step 9
        raise SpecError("too many parameters")
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


def spec_records(head: bytes, pos: int, shapes: list[tuple[int, ...]]) -> list[dict]:
    """FORMAT.md 4.3 and 7 step 10 (one record per tensor shape)."""
    records = []
    for shape in shapes:
        rec = {"offset": pos}  # header offset of the record (for the corruption tests)
        (step, kind), pos = _take(head, pos, "<eB")
        rec.update(step=step, kind=kind)
        if kind == ROW_CONTEXT and len(shape) != 3:  # 7 step 10.4: "as soon as its kind byte is read"
            raise SpecError("ROW_CONTEXT on a tensor that is not rank 3")
        if kind in PLAIN_KINDS:
            pos = _model_params(head, pos, rec)
        if not (math.isfinite(step) and F16_MIN <= step <= F16_MAX):
            raise SpecError("step out of range")
        if kind not in PLAIN_KINDS + (ROW_CONTEXT,):
            raise SpecError("model kind")
        if kind == ROW_CONTEXT:  # 4.3: n_classes (u8, 2..16), then n_classes class models of kind 0..3
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


def _decode_row_context(decoder, rec: dict, shape: tuple[int, ...]) -> np.ndarray:
    """FORMAT.md 6.1: channel by channel, row by row; per row, class k's group (left to right) for k = 0.. n-1."""
    channels, rows, cols = shape
    n_classes = len(rec["classes"])
    q = np.zeros(shape, dtype=np.int32)
    for ch in range(channels):
        for r in range(rows):
            above = q[ch, r - 1] if r > 0 else np.zeros(cols, dtype=np.int32)
            cls = spec_context_classes(above, n_classes)
            for k, sub in enumerate(rec["classes"]):
                where = np.flatnonzero(cls == k)
                q[ch, r, where] = _decode_plain(decoder, sub, where.size)
    return q


def spec_read(data: bytes) -> tuple[dict, list[np.ndarray]]:
    """Parse a whole file; return the header as a dict and the dequantized float32 tensors."""
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
    records = spec_records(head, pos, shapes)
    hdr["records"] = records

    if len(payload) % 4:
        raise SpecError("payload not whole words")
    coded = any(r["kind"] != ZERO for r in records)
    if coded != (len(payload) > 0):
        raise SpecError("payload presence does not match the records")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    weights = []
    for rec, shape in zip(records, shapes):
        if rec["kind"] == ROW_CONTEXT:
            sym = _decode_row_context(decoder, rec, shape)
        else:
            sym = _decode_plain(decoder, rec, int(np.prod(shape)))
        weights.append(sym.reshape(shape).astype(np.float32) * np.float32(rec["step"]))
    if not decoder.maybe_exhausted():
        raise SpecError("payload has unused data")
    return hdr, weights


def spec_axis(n: int) -> np.ndarray:
    idx = np.arange(n, dtype=np.float64)
    return ((2.0 * idx + 1.0) / n - 1.0).astype(np.float32)


def spec_sample(grid: np.ndarray, p: np.ndarray) -> np.ndarray:
    """FORMAT.md 8.1: bilinear sampling of a (K, R, Q) grid at (N, 2) float32 coordinates -> (N, K), float32."""
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


def spec_render(hdr: dict, weights: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """Evaluate the network on a height x width pixel-centre grid, float32 throughout; uint8 (H, W, C)."""
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
        h = np.concatenate([spec_sample(g, p) for g in weights[:levels]], axis=1)  # grid 0's K channels first
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
    y = np.where(np.isnan(y), np.float32(0.0), y)  # 8.3: a NaN output becomes 0.0 (128); +-inf clamp
    v = np.rint((y + np.float32(1.0)) * np.float32(127.5))
    return np.clip(v, 0, 255).astype(np.uint8).reshape(height, width, -1)


# --- the checks against the reference implementation --------------------------------------------


def _encode(channels: int, seed: int, arch: str = "siren", size: tuple[int, int] = (12, 20)) -> bytes:
    from codec.config import EncoderConfig
    from codec.encoder import encode_pixels

    from conftest import smooth_image

    # a smooth image, so the fitted network beats a flat image (noise would get the flat fallback,
    # whose weights are all zero and exercise too few of the format's models)
    img = smooth_image(*size, channels, seed=seed)
    if arch == "latent":  # sizes its own grids and MLP; tiny images need a high rate for its smallest file
        cfg = EncoderConfig(arch="latent", bpp=40.0, steps=60, device="cpu")
    else:
        cfg = EncoderConfig(hidden_width=8, hidden_layers=2 if arch == "siren" else 3, bits=6, steps=60, device="cpu", arch=arch)
    result = encode_pixels(img, cfg)
    assert not result.flat_fallback
    return result.data


def _header_fields(header) -> dict:
    names = ("width", "height", "channels", "arch", "hidden_width", "hidden_layers", "omega0", "init_id")
    fields = {k: getattr(header, k) for k in names}
    if header.arch == 3:
        fields.update(latent_levels=header.latent_levels, latent_channels=header.latent_channels)
    return fields


def _all_models_variant(data: bytes, sparse: int = 2) -> bytes:
    """The same network re-written so that it uses every model kind (HISTOGRAM, ZERO, LAPLACE, SPARSE_LAPLACE)."""
    import bitstream

    header, symbols = bitstream.read_file(data)
    symbols = [s.copy() for s in symbols]
    symbols[-1][:] = 0  # output bias -> ZERO
    records = list(header.tensors)
    if hasattr(bitstream, "SPARSE_LAPLACE"):  # tensor `sparse` (a weight), a third of it zeroed
        flat = symbols[sparse].reshape(-1)
        flat[::3] = 0
        m = int(np.abs(flat).max())
        p_zero = round(65536 * np.count_nonzero(flat == 0) / flat.size)
        model = bitstream.TensorModel(bitstream.SPARSE_LAPLACE, m, scale=float(np.float16(np.abs(flat[flat != 0]).mean())), p_zero=p_zero)
        records[sparse] = bitstream.TensorRecord(records[sparse].step, model)
    m = int(np.abs(symbols[0]).max())
    counts = np.bincount(symbols[0].reshape(-1) + m, minlength=2 * m + 1)
    records[0] = bitstream.TensorRecord(records[0].step, bitstream.TensorModel(bitstream.HISTOGRAM, m, counts=tuple(int(c) for c in counts)))
    records[-1] = bitstream.TensorRecord(records[-1].step, bitstream.TensorModel(bitstream.ZERO))
    return bitstream.write_file(bitstream.Header(**_header_fields(header), tensors=tuple(records)), symbols)


def _latent_k2_file() -> bytes:
    """A hand-made latent-grid file with 2 channels per grid (the encoder writes K = 1): FORMAT.md 4.2's
    example, 13 x 9, G = 3, K = 2, W = 6, L = 2, C = 3, with random symbols."""
    import bitstream

    rng = np.random.default_rng(7)
    shapes = spec_shapes(3, 6, 2, 3, width=13, height=9, latent_levels=3, latent_channels=2)
    symbols, records = [], []
    for i, shape in enumerate(shapes):
        latent = i < 3
        q = rng.integers(-8, 9, size=shape).astype(np.int32) if latent else rng.integers(-40, 41, size=shape).astype(np.int32)
        step = 2.0**-3 if latent else 2.0**-6
        symbols.append(q)
        records.append(bitstream.TensorRecord(step, bitstream.choose_model(q)))
    header = bitstream.Header(width=13, height=9, channels=3, arch=3, hidden_width=6, hidden_layers=2, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=3, latent_channels=2)
    return bitstream.write_file(header, symbols)


def spec_grid_classes(q: np.ndarray, n_classes: int) -> np.ndarray:
    """The context class (FORMAT.md 6.1) of every symbol of a (K, R, Q) grid."""
    above = np.zeros_like(q)
    above[:, 1:] = q[:, :-1]
    return np.stack([np.stack([spec_context_classes(row, n_classes) for row in channel]) for channel in above])


# the hand-made ROW_CONTEXT grid's class models, one per context class (FORMAT.md 4.3: kinds 0..3)
RC_CLASS_KINDS = (SPARSE_LAPLACE, ZERO, LAPLACE, HISTOGRAM, LAPLACE, SPARSE_LAPLACE)


def _row_context_grid(rng, shape: tuple[int, int, int]) -> np.ndarray:
    """Sparse small symbols, row by row, zero wherever the class model is ZERO; channel 1's first row all zero
    (a SPARSE_LAPLACE group whose flags are all 0, so no values are coded for it)."""
    q = np.zeros(shape, dtype=np.int32)
    zero_classes = [k for k, kind in enumerate(RC_CLASS_KINDS) if kind == ZERO]
    for ch in range(shape[0]):
        for r in range(1 if ch == 1 else 0, shape[1]):
            cls = spec_context_classes(q[ch, r - 1] if r else np.zeros(shape[2], np.int32), len(RC_CLASS_KINDS))
            row = np.where(rng.random(shape[2]) < 0.4, rng.choice([-3, -2, -1, -1, 1, 1, 2, 3], shape[2]), 0)
            row[np.isin(cls, zero_classes)] = 0
            q[ch, r] = row
    return q


def _class_model(kind: int, v: np.ndarray):
    """A class model of the given kind fitted to the class's symbols v (FORMAT.md 6.3's parameters)."""
    import bitstream

    m = max(1, int(np.abs(v).max(initial=0)))
    if kind == ZERO:
        assert not v.any()
        return bitstream.TensorModel(ZERO)
    if kind == HISTOGRAM:
        counts = np.bincount(v + m, minlength=2 * m + 1)
        return bitstream.TensorModel(HISTOGRAM, m, counts=tuple(int(c) for c in counts))
    nz = v[v != 0] if kind == SPARSE_LAPLACE else v
    scale = float(np.float16(max(float(np.abs(nz).mean()), 0.05)))
    if kind == LAPLACE:
        return bitstream.TensorModel(LAPLACE, m, scale=scale)
    p_zero = min(max(round(65536 * np.count_nonzero(v == 0) / v.size), 1), 65535)
    return bitstream.TensorModel(SPARSE_LAPLACE, m, scale=scale, p_zero=p_zero)


def _row_context_file() -> bytes:
    """FORMAT.md 4.2's 13 x 9, G = 3, K = 2 example again, its finest grid written by hand as ROW_CONTEXT with
    class models of every plain kind, so every branch of 6.1's group order is used."""
    import bitstream

    rng = np.random.default_rng(11)
    shapes = spec_shapes(3, 6, 2, 3, width=13, height=9, latent_levels=3, latent_channels=2)
    q = _row_context_grid(rng, shapes[0])
    cls = spec_grid_classes(q, len(RC_CLASS_KINDS))
    # coverage: every class occurs; every coded class has nonzero symbols; nonzero symbols in many rows of both
    # channels; a SPARSE_LAPLACE group with only zeros and one with nonzero values
    for k, kind in enumerate(RC_CLASS_KINDS):
        assert (cls == k).any() and (kind == ZERO or q[cls == k].any()), k
    assert all((q[ch] != 0).any(axis=1).sum() >= 5 for ch in range(2))
    groups = [q[ch, r][cls[ch, r] == k] for ch in range(2) for r in range(q.shape[1]) for k in (0, 5)]
    assert any(g.size and not g.any() for g in groups) and any(g.any() for g in groups)
    classes = tuple(_class_model(kind, q[cls == k]) for k, kind in enumerate(RC_CLASS_KINDS))
    symbols = [q] + [rng.integers(-8, 9, size=s).astype(np.int32) for s in shapes[1:3]]
    symbols += [rng.integers(-40, 41, size=s).astype(np.int32) for s in shapes[3:]]
    context = bitstream.TensorModel(bitstream.entropy.ROW_CONTEXT, classes=classes)
    records = [bitstream.TensorRecord(2.0**-2, context)]
    records += [bitstream.TensorRecord(2.0**-3 if i < 3 else 2.0**-6, bitstream.choose_model(symbols[i]))
                for i in range(1, len(shapes))]
    header = bitstream.Header(width=13, height=9, channels=3, arch=3, hidden_width=6, hidden_layers=2, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=3, latent_channels=2)
    return bitstream.write_file(header, symbols)


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    rgb = _encode(3, 0)
    poly = _encode(3, 2, "poly")
    latent = _encode(3, 3, "latent")
    levels = latent[7 + 14]  # FORMAT.md 4.1: latent_levels; the first MLP weight follows the grids
    return {"rgb": rgb, "gray": _encode(1, 1), "all-models": _all_models_variant(rgb), "poly": poly,
            "poly-all-models": _all_models_variant(poly),
            "latent": latent, "latent-gray": _encode(1, 4, "latent", size=(13, 21)),
            "latent-all-models": _all_models_variant(latent, sparse=levels), "latent-k2": _latent_k2_file(),
            # big enough that the reference encoder codes its two finest grids with ROW_CONTEXT (6.3)
            "latent-rc": _encode(3, 3, "latent", size=(48, 64)), "latent-row-context": _row_context_file()}


def _reference_pixels(data: bytes, **size) -> np.ndarray:
    import codec

    arr = np.asarray(codec.decode(data, device="cpu", **size))
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def _compare(mine: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    assert mine.shape == ref.shape
    diff = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
    return int(diff.max()), float((diff == 0).mean())


def _arch_of(name: str) -> int:
    return 2 if name.startswith("poly") else 3 if name.startswith("latent") else 1


ALL_FILES = ["rgb", "gray", "all-models", "poly", "poly-all-models", "latent", "latent-gray", "latent-all-models",
             "latent-k2", "latent-rc", "latent-row-context"]


@pytest.mark.parametrize("name", ALL_FILES)
def test_independent_reader_matches_reference(files, name):
    import bitstream

    data = files[name]
    hdr, weights = spec_read(data)
    ref_weights = bitstream.dequantize(*bitstream.read_file(data))
    assert len(weights) == len(ref_weights)
    for mine, ref in zip(weights, ref_weights):
        assert mine.dtype == ref.dtype == np.float32 and mine.shape == ref.shape
        assert np.array_equal(mine.view(np.uint32), ref.view(np.uint32))
    assert hdr["arch"] == _arch_of(name)
    if name.endswith("all-models"):
        sparse = hdr["latent_levels"] if hdr["arch"] == 3 else 2
        assert [r["kind"] for r in hdr["records"]][0] == HISTOGRAM
        assert hdr["records"][-1]["kind"] == ZERO and LAPLACE in [r["kind"] for r in hdr["records"]]
        assert hdr["records"][sparse]["kind"] in (LAPLACE, SPARSE_LAPLACE)

    mine = spec_render(hdr, weights, hdr["width"], hdr["height"])
    max_diff, equal = _compare(mine, _reference_pixels(data))
    assert max_diff <= 1 and equal >= 0.99, (max_diff, equal)
    assert mine.shape[2] == hdr["channels"]


@pytest.mark.parametrize("name", ["rgb", "poly", "latent", "latent-gray", "latent-k2", "latent-rc",
                                  "latent-row-context"])
def test_independent_render_at_other_sizes(files, name):
    hdr, weights = spec_read(files[name])
    for w, h in ((7, 5), (41, 23)):
        max_diff, equal = _compare(spec_render(hdr, weights, w, h), _reference_pixels(files[name], size=(w, h)))
        assert max_diff <= 1 and equal >= 0.99, (w, h, max_diff, equal)


def test_versions_and_latent_header(files):
    """FORMAT.md 3 / 9: latent-grid files are version 2 with the two extra fields; every other file stays version 1."""
    for name in ALL_FILES:
        hdr, _ = spec_read(files[name])
        assert files[name][4] == hdr["version"] == (2 if hdr["arch"] == 3 else 1), name
        assert hdr["arch"] == _arch_of(name), name
        if hdr["arch"] == 3:
            assert hdr["omega0"] == 1.0
            assert 1 <= hdr["latent_levels"] <= 12 and 1 <= hdr["latent_channels"] <= 8
    hdr, weights = spec_read(files["latent-k2"])
    assert (hdr["latent_levels"], hdr["latent_channels"]) == (3, 2)
    # FORMAT.md 4.2's worked example
    assert [w.shape for w in weights] == [(2, 9, 13), (2, 5, 7), (2, 3, 4), (6, 6), (6,), (6, 6), (6,), (3, 6), (3,)]
    assert sum(w.size for w in weights) == 433
    assert sum(np.prod(s) for s in spec_shapes(1, 8, 2, 3)) == 123
    assert sum(np.prod(s) for s in spec_shapes(2, 8, 3, 3)) == 243


def test_spec_sample_hits_cell_centres():
    """FORMAT.md 8.1: a grid returns its own values at its own cell centres, the border value outside them."""
    grid = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    yy, xx = np.meshgrid(spec_axis(3), spec_axis(5), indexing="ij")
    p = np.stack([xx.reshape(-1), yy.reshape(-1)], axis=1)
    assert np.array_equal(spec_sample(grid, p), grid.reshape(2, -1).T)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0]], dtype=np.float32)
    assert np.array_equal(spec_sample(grid, corners), grid[:, [0, -1], [0, -1]].T)


def _refit_crc(data: bytes | bytearray) -> bytes:
    data = bytearray(data)
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])) & 0xFFFFFFFF)
    return bytes(data)


def _patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, value)
    return _refit_crc(data)


def test_independent_reader_checks_version_and_latent_fields(files):
    """FORMAT.md 7 steps 3 and 8, checked by both readers: version, arch per version, omega0, latent-field ranges."""
    import bitstream

    latent, siren = files["latent"], files["rgb"]
    bad = {
        "version 3": _patched(latent, 4, "<B", 3),
        "version 0": _patched(latent, 4, "<B", 0),
        "arch 3 in version 1": _patched(latent, 4, "<B", 1),
        "arch 4": _patched(latent, 7 + 5, "<B", 4),
        "latent omega0": _patched(latent, 7 + 9, "<f", 30.0),
        "latent_levels 0": _patched(latent, 7 + 14, "<B", 0),
        "latent_levels 13": _patched(latent, 7 + 14, "<B", 13),
        "latent_channels 0": _patched(latent, 7 + 15, "<B", 0),
        "latent_channels 9": _patched(latent, 7 + 15, "<B", 9),
        "poly omega0": _patched(files["poly"], 7 + 9, "<f", 30.0),
        "siren omega0 nan": _patched(siren, 7 + 9, "<f", float("nan")),
    }
    # an arch-3 header that stops right after init_id (the latent-grid fields missing)
    cut = bytearray(latent[: 7 + 14]) + struct.pack("<I", 0) + bytes(4)
    struct.pack_into("<H", cut, 5, 14)
    bad["latent fields missing"] = _refit_crc(cut)
    for what, data in bad.items():
        with pytest.raises(SpecError):
            spec_read(data)
        with pytest.raises(bitstream.InrFormatError):
            bitstream.read_file(data)
    # a version 2 decoder reads both versions, and version 2 holds architectures 1..3 (9)
    hdr, weights = spec_read(_patched(siren, 4, "<B", 2))
    assert hdr["version"] == 2 and hdr["arch"] == 1
    assert bitstream.read_file(_patched(siren, 4, "<B", 2))[0].arch == 1


def test_independent_reader_rejects_corruption(files):
    data = bytearray(files["rgb"])
    data[20] ^= 0x01
    with pytest.raises(SpecError, match="crc"):
        spec_read(bytes(data))
    with pytest.raises(SpecError):
        spec_read(files["rgb"] + b"\0")


def test_row_context_files(files):
    """FORMAT.md 4.3 / 6.1: the encoder's ROW_CONTEXT grids and the hand-made one, as both readers see them."""
    import bitstream

    for name, grids in (("latent-rc", 2), ("latent-row-context", 1)):
        hdr, weights = spec_read(files[name])
        ref = bitstream.read_header(files[name]).to_dict()["tensors"]
        kinds = [r["kind"] for r in hdr["records"]]
        assert kinds[:grids] == [ROW_CONTEXT] * grids, (name, kinds)
        assert ROW_CONTEXT not in kinds[hdr["latent_levels"]:]  # never on an MLP tensor
        for rec, info in zip(hdr["records"], ref):
            assert (info["model"] == "row-context") == (rec["kind"] == ROW_CONTEXT)
            if rec["kind"] == ROW_CONTEXT:
                assert 2 <= len(rec["classes"]) == len(info["classes"]) <= 16
    hdr, weights = spec_read(files["latent-row-context"])
    rec = hdr["records"][0]
    assert tuple(c["kind"] for c in rec["classes"]) == RC_CLASS_KINDS
    q = np.rint(weights[0] / np.float32(rec["step"])).astype(np.int32)
    assert q.shape == (2, 9, 13) and all((q[ch] != 0).any(axis=1).sum() >= 5 for ch in range(2))
    # the classes of a row depend on the row above only (6.1): a worked row
    assert spec_context_classes(np.array([0, 3, 0, 0, -1]), 6).tolist() == [3, 5, 3, 1, 2]
    assert spec_context_classes(np.zeros(4, np.int32), 2).tolist() == [0, 0, 0, 0]


def test_row_context_records_are_checked(files):
    """FORMAT.md 4.3 / 7 step 10.4, checked by both readers: kind 4 only on rank-3 tensors, n_classes 2..16,
    class kinds 0..3."""
    import bitstream
    from benchmarks.fuzz_inr import fix_crc

    def patched(data: bytes, head_offset: int, value: int) -> bytes:
        data = bytearray(data)
        data[7 + head_offset] = value
        return fix_crc(bytes(data))

    rc = files["latent-row-context"]
    hdr, _ = spec_read(rc)
    grid, mlp = hdr["records"][0], hdr["records"][hdr["latent_levels"]]
    assert grid["kind"] == ROW_CONTEXT and len(grid["classes"]) == 6
    siren = spec_read(files["rgb"])[0]["records"][0]
    latent_hdr, _ = spec_read(files["latent"])
    latent_mlp = latent_hdr["records"][latent_hdr["latent_levels"]]
    rank, classes = ("not rank 3", "only latent grids"), ("n_classes", "classes' = ")
    class_kind = ("class model kind", "not a plain model")
    bad = {  # what: (file, why my reader rejects it, why the reference does)
        "kind 4 on a latent MLP weight": (patched(rc, mlp["offset"] + 2, ROW_CONTEXT), *rank),
        "kind 4 on the encoder's MLP": (patched(files["latent"], latent_mlp["offset"] + 2, ROW_CONTEXT), *rank),
        "kind 4 on a SIREN weight": (patched(files["rgb"], siren["offset"] + 2, ROW_CONTEXT), *rank),
        "n_classes 1": (patched(rc, grid["offset"] + 3, 1), *classes),
        "n_classes 17": (patched(rc, grid["offset"] + 3, 17), *classes),
        "n_classes 0": (patched(rc, grid["offset"] + 3, 0), *classes),
        "class kind 4": (patched(rc, grid["classes"][0]["offset"], 4), *class_kind),
        "class kind 5": (patched(rc, grid["classes"][0]["offset"], 5), *class_kind),
        "last class kind 4": (patched(rc, grid["classes"][-1]["offset"], 4), *class_kind),
        "grid kind 5": (patched(rc, grid["offset"] + 2, 5), "model kind", "not a known model"),
    }
    for what, (data, mine, ref) in bad.items():
        with pytest.raises(SpecError, match=mine):
            spec_read(data)
        with pytest.raises(bitstream.InrFormatError, match=ref):
            bitstream.read_file(data)
