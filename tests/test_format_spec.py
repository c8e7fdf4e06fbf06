"""An independent `.inr` reader written from bitstream/FORMAT.md alone.

It parses files with plain `struct`, `zlib`, numpy and constriction (none of bitstream's parsing
code), evaluates the network (SIREN, arch 1, or Poly-INR, arch 2) in float32 numpy and checks that it agrees with the reference:
dequantized weights bit-for-bit, rendered pixels within one level (and equal for >= 99%).
"""
from __future__ import annotations

import struct
import zlib

import constriction
import numpy as np
import pytest

# --- the reader: FORMAT.md sections 3-8, nothing imported from bitstream -----------------------

MAGIC = b"\x89INR"
FIXED = "<HHBBHBfB"  # width, height, channels, arch, hidden_width, hidden_layers, omega0, init_id
ZERO, LAPLACE, HISTOGRAM, SPARSE_LAPLACE = 0, 1, 2, 3


class SpecError(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise SpecError("header ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 35:
            raise SpecError("varint too long")


def spec_shapes(arch: int, hidden_width: int, hidden_layers: int, channels: int) -> list[tuple[int, ...]]:
    w, shapes = hidden_width, []
    if arch == 2:  # FORMAT.md 4.2, Poly-INR: input layer, L-1 x (coordinate map, linear map), output
        shapes = [(w, 2), (w,)] + [(w, 2), (w,), (w, w), (w,)] * (hidden_layers - 1)
        return shapes + [(channels, w), (channels,)]
    dims = [2] + [hidden_width] * hidden_layers + [channels]
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes


def spec_read(data: bytes) -> tuple[dict, list[np.ndarray]]:
    """Parse a whole file; return the header as a dict and the dequantized float32 tensors."""
    if data[:4] != MAGIC:
        raise SpecError("magic")
    if len(data) < 15:
        raise SpecError("truncated")
    version, head_len = struct.unpack_from("<BH", data, 4)
    if version != 1:
        raise SpecError("version")
    if 7 + head_len + 8 > len(data):
        raise SpecError("truncated header")
    (pay_len,) = struct.unpack_from("<I", data, 7 + head_len)
    total = 7 + head_len + 4 + pay_len + 4
    if total != len(data):
        raise SpecError("length mismatch")
    (crc,) = struct.unpack_from("<I", data, total - 4)
    if zlib.crc32(data[: total - 4]) & 0xFFFFFFFF != crc:
        raise SpecError("crc")
    head = data[7 : 7 + head_len]
    payload = data[7 + head_len + 4 : total - 4]

    names = ("width", "height", "channels", "arch", "hidden_width", "hidden_layers", "omega0", "init_id")
    hdr = dict(zip(names, struct.unpack_from(FIXED, head, 0)))
    assert struct.calcsize(FIXED) == 14
    assert hdr["arch"] in (1, 2) and hdr["init_id"] == 0
    if hdr["arch"] == 2 and hdr["omega0"] != 1.0:
        raise SpecError("omega0 of a Poly-INR")
    shapes = spec_shapes(hdr["arch"], hdr["hidden_width"], hdr["hidden_layers"], hdr["channels"])
    pos = 14
    records = []
    for _ in shapes:
        step, kind = struct.unpack_from("<eB", head, pos)
        pos += 3
        rec = {"step": step, "kind": kind}
        if kind in (LAPLACE, HISTOGRAM, SPARSE_LAPLACE):
            (rec["max_abs"],) = struct.unpack_from("<H", head, pos)
            pos += 2
        if kind == LAPLACE:
            (rec["scale"],) = struct.unpack_from("<e", head, pos)
            pos += 2
        elif kind == SPARSE_LAPLACE:
            rec["scale"], rec["p_zero"] = struct.unpack_from("<eH", head, pos)
            pos += 4
        elif kind == HISTOGRAM:
            counts = []
            for _ in range(2 * rec["max_abs"] + 1):
                c, pos = _varint(head, pos)
                counts.append(c)
            rec["counts"] = counts
        elif kind != ZERO:
            raise SpecError("model kind")
        records.append(rec)
    if pos != len(head):
        raise SpecError("header trailing bytes")
    hdr["records"] = records

    if len(payload) % 4:
        raise SpecError("payload not whole words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    weights = []
    for rec, shape in zip(records, shapes):
        n = int(np.prod(shape))
        if rec["kind"] == ZERO:
            sym = np.zeros(n, dtype=np.int32)
        elif rec["kind"] == LAPLACE:
            m = rec["max_abs"]
            model = constriction.stream.model.QuantizedLaplace(-m, m, 0.0, float(rec["scale"]))
            sym = np.asarray(decoder.decode(model, n), dtype=np.int32)
        elif rec["kind"] == SPARSE_LAPLACE:
            flags = constriction.stream.model.Bernoulli(1.0 - rec["p_zero"] / 65536, perfect=True)
            nonzero = np.asarray(decoder.decode(flags, n), dtype=np.int32) != 0
            sym = np.zeros(n, dtype=np.int32)
            if nonzero.any():
                m = rec["max_abs"]
                model = constriction.stream.model.QuantizedLaplace(-m, m, 0.0, float(rec["scale"]))
                values = np.asarray(decoder.decode(model, int(nonzero.sum())), dtype=np.int32)
                if np.any(values == 0):
                    raise SpecError("zero where the flags say nonzero")
                sym[nonzero] = values
        else:
            m = rec["max_abs"]
            probs = np.asarray(rec["counts"], dtype=np.float64)
            model = constriction.stream.model.Categorical(probs / probs.sum(), perfect=False)
            sym = np.asarray(decoder.decode(model, n), dtype=np.int32) - np.int32(m)
        weights.append(sym.reshape(shape).astype(np.float32) * np.float32(rec["step"]))
    if not decoder.maybe_exhausted():
        raise SpecError("payload has unused data")
    return hdr, weights


def spec_axis(n: int) -> np.ndarray:
    idx = np.arange(n, dtype=np.float64)
    return ((2.0 * idx + 1.0) / n - 1.0).astype(np.float32)


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
    else:
        omega0 = np.float32(hdr["omega0"])
        h = p
        for k in range(0, len(weights) - 2, 2):
            h = np.sin(omega0 * (h @ weights[k].T + weights[k + 1]))
    y = h @ weights[-2].T + weights[-1]
    assert y.dtype == np.float32
    v = np.rint((y + np.float32(1.0)) * np.float32(127.5))
    return np.clip(v, 0, 255).astype(np.uint8).reshape(height, width, -1)


# --- the checks against the reference implementation --------------------------------------------


def _encode(channels: int, seed: int, arch: str = "siren") -> bytes:
    from codec.config import EncoderConfig
    from codec.encoder import encode_pixels

    from conftest import smooth_image

    # a smooth image, so the fitted network beats a flat image (noise would get the flat fallback,
    # whose weights are all zero and exercise too few of the format's models)
    img = smooth_image(12, 20, channels, seed=seed)
    cfg = EncoderConfig(hidden_width=8, hidden_layers=2 if arch == "siren" else 3, bits=6, steps=60, device="cpu", arch=arch)
    result = encode_pixels(img, cfg)
    assert not result.flat_fallback
    return result.data


def _all_models_variant(data: bytes) -> bytes:
    """The same network re-written so that it uses every model kind (HISTOGRAM, ZERO, LAPLACE, SPARSE_LAPLACE)."""
    import bitstream

    header, symbols = bitstream.read_file(data)
    symbols = [s.copy() for s in symbols]
    symbols[-1][:] = 0  # output bias -> ZERO
    records = list(header.tensors)
    if hasattr(bitstream, "SPARSE_LAPLACE"):  # tensor 2 (hidden weight), a third of it zeroed
        flat = symbols[2].reshape(-1)
        flat[::3] = 0
        m = int(np.abs(flat).max())
        p_zero = round(65536 * np.count_nonzero(flat == 0) / flat.size)
        model = bitstream.TensorModel(bitstream.SPARSE_LAPLACE, m, scale=float(np.float16(np.abs(flat[flat != 0]).mean())), p_zero=p_zero)
        records[2] = bitstream.TensorRecord(records[2].step, model)
    m = int(np.abs(symbols[0]).max())
    counts = np.bincount(symbols[0].reshape(-1) + m, minlength=2 * m + 1)
    records[0] = bitstream.TensorRecord(records[0].step, bitstream.TensorModel(bitstream.HISTOGRAM, m, counts=tuple(int(c) for c in counts)))
    records[-1] = bitstream.TensorRecord(records[-1].step, bitstream.TensorModel(bitstream.ZERO))
    fields = {k: getattr(header, k) for k in ("width", "height", "channels", "arch", "hidden_width", "hidden_layers", "omega0", "init_id")}
    return bitstream.write_file(bitstream.Header(**fields, tensors=tuple(records)), symbols)


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    rgb = _encode(3, 0)
    poly = _encode(3, 2, "poly")
    return {"rgb": rgb, "gray": _encode(1, 1), "all-models": _all_models_variant(rgb), "poly": poly,
            "poly-all-models": _all_models_variant(poly)}


def _reference_pixels(data: bytes, **size) -> np.ndarray:
    import codec

    arr = np.asarray(codec.decode(data, device="cpu", **size))
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def _compare(mine: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    assert mine.shape == ref.shape
    diff = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
    return int(diff.max()), float((diff == 0).mean())


@pytest.mark.parametrize("name", ["rgb", "gray", "all-models", "poly", "poly-all-models"])
def test_independent_reader_matches_reference(files, name):
    import bitstream

    data = files[name]
    hdr, weights = spec_read(data)
    ref_weights = bitstream.dequantize(*bitstream.read_file(data))
    assert len(weights) == len(ref_weights)
    for mine, ref in zip(weights, ref_weights):
        assert mine.dtype == ref.dtype == np.float32 and mine.shape == ref.shape
        assert np.array_equal(mine.view(np.uint32), ref.view(np.uint32))
    assert hdr["arch"] == (2 if name.startswith("poly") else 1)
    if name.endswith("all-models"):
        assert [r["kind"] for r in hdr["records"]][0] == HISTOGRAM
        assert hdr["records"][-1]["kind"] == ZERO and LAPLACE in [r["kind"] for r in hdr["records"]]
        assert hdr["records"][2]["kind"] in (LAPLACE, SPARSE_LAPLACE)

    mine = spec_render(hdr, weights, hdr["width"], hdr["height"])
    max_diff, equal = _compare(mine, _reference_pixels(data))
    assert max_diff <= 1 and equal >= 0.99, (max_diff, equal)
    assert mine.shape[2] == hdr["channels"]


@pytest.mark.parametrize("name", ["rgb", "poly"])
def test_independent_render_at_other_sizes(files, name):
    hdr, weights = spec_read(files[name])
    for w, h in ((7, 5), (41, 23)):
        max_diff, equal = _compare(spec_render(hdr, weights, w, h), _reference_pixels(files[name], size=(w, h)))
        assert max_diff <= 1 and equal >= 0.99, (w, h, max_diff, equal)


def test_independent_reader_rejects_corruption(files):
    data = bytearray(files["rgb"])
    data[20] ^= 0x01
    with pytest.raises(SpecError, match="crc"):
        spec_read(bytes(data))
    with pytest.raises(SpecError):
        spec_read(files["rgb"] + b"\0")
