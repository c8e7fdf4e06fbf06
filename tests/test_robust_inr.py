"""Hostile and damaged `.inr` files: every one must give InrFormatError, quickly and in bounded memory.

Many cases build files whose CRC is valid (recomputed), so the checks behind the checksum
(header fields, section lengths, limits, the entropy decoder) are what is being tested.
"""
from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest

import bitstream
from bitstream.entropy import SPARSE_LAPLACE
from bitstream import HISTOGRAM, LAPLACE, ZERO, Header, InrFormatError, TensorModel, TensorRecord
from bitstream.header import _FIXED, FIELDS
from codec import OptionError, decode
from codec.decoding.decoder import DEFAULT_MAX_PIXELS, DecodeLimits, decode_array

from benchmarks.robustness.fuzz_inr import crafted_file

MAGIC = bitstream.MAGIC


# ---------------------------------------------------------------- helpers

def frame(head: bytes, payload: bytes = b"", *, version: int = 1, head_len: int | None = None,
          pay_len: int | None = None, crc: bool = True) -> bytes:
    """Assemble a file from raw sections, optionally with lying lengths; CRC recomputed by default."""
    body = (MAGIC + struct.pack("<BH", version, len(head) if head_len is None else head_len) + head
            + struct.pack("<I", len(payload) if pay_len is None else pay_len) + payload)
    return body + struct.pack("<I", zlib.crc32(body) if crc else 0)


def fixed(**overrides) -> bytes:
    values = dict(width=20, height=12, channels=3, arch=1, hidden_width=4, hidden_layers=1, omega0=30.0, init_id=0)
    values.update(overrides)
    return _FIXED.pack(*(values[f.name] for f in FIELDS))


def zero_records(n: int) -> bytes:
    """n tensor records with step 0.01 and the ZERO model (nothing in the payload)."""
    return b"".join(struct.pack("<eB", 0.01, ZERO) for _ in range(n))


def zero_file(**overrides) -> bytes:
    """A valid-CRC file whose tensors are all zero (no payload) and whose fixed fields are `overrides`."""
    layers = overrides.get("hidden_layers", 1)
    return frame(fixed(**overrides) + zero_records(2 * (layers + 1)))


def split(data: bytes) -> tuple[bytes, bytes]:
    head_len = struct.unpack_from("<H", data, 5)[0]
    head = data[7 : 7 + head_len]
    payload = data[7 + head_len + 4 : -4]
    return head, payload


def assert_rejected(data: bytes, *words: str, limits: DecodeLimits = DecodeLimits(), seconds: float = 1.0, **kw) -> str:
    t0 = time.perf_counter()
    with pytest.raises(InrFormatError) as info:
        decode_array(data, device="cpu", limits=limits, **kw)
    elapsed = time.perf_counter() - t0
    msg = str(info.value)
    assert elapsed < seconds, f"rejection took {elapsed:.2f} s ({msg})"
    assert msg and "\n" not in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


@pytest.fixture(scope="module")
def good() -> bytes:
    rng = np.random.default_rng(7)
    return crafted_file(rng, channels=3, hidden_width=12, hidden_layers=2, width=20, height=12,
                        kinds=(LAPLACE, HISTOGRAM, ZERO))


# ---------------------------------------------------------------- framing

def test_good_file_decodes(good):
    assert decode_array(good, device="cpu").shape == (12, 20, 3)


def test_every_truncation_is_rejected(good):
    for n in range(len(good)):
        msg = assert_rejected(good[:n])
        if n == 0:
            assert "empty" in msg
        else:
            assert "truncated" in msg, (n, msg)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_prefix_of_magic_says_truncated(n):
    assert_rejected(MAGIC[:n], "truncated")


def test_every_single_bit_flip_is_rejected(good):
    for bit in range(8 * len(good)):
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert_rejected(bytes(bad))


def test_random_bytes_are_rejected():
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 15, 16, 100, 10_000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert_rejected(data)
        assert_rejected(MAGIC + data)  # right magic, garbage after it


def test_wrong_magic(good):
    assert_rejected(b"\x89PNG" + good[4:], "wrong magic")
    assert_rejected(b"GIF89a" + bytes(40), "wrong magic")


def test_future_and_past_versions(good):
    body = bytearray(good[:-4])
    for version, words in ((6, ("version 6", "newer")), (255, ("version 255",)), (0, ("version 0",))):
        body[4] = version
        data = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
        assert_rejected(data, *words)


def test_checksum_mismatch(good):
    bad = good[:-1] + bytes([good[-1] ^ 1])
    assert_rejected(bad, "checksum")


def test_trailing_bytes(good):
    assert_rejected(good + b"\x00", "unexpected bytes")


@pytest.mark.parametrize("delta", [-5, -1, 1, 3, 1000, 0xFFFF])
def test_header_length_that_lies(good, delta):
    head, payload = split(good)
    lied = max(0, min(0xFFFF, len(head) + delta))
    assert_rejected(frame(head, payload, head_len=lied))


@pytest.mark.parametrize("pay_len", [0, 3, 4, 0x7FFFFFFF, 0xFFFFFFFF])
def test_payload_length_that_lies(good, pay_len):
    head, payload = split(good)
    assert_rejected(frame(head, payload, pay_len=pay_len))


def test_zero_length_header():
    assert_rejected(frame(b""), "header ends")


# ---------------------------------------------------------------- header fields behind a valid CRC

@pytest.mark.parametrize("field, value, word", [
    ("width", 0, "'width'"),
    ("height", 0, "'height'"),
    ("channels", 0, "'channels'"),
    ("channels", 4, "'channels'"),
    ("arch", 0, "'arch'"),
    ("arch", 4, "'arch'"),
    ("hidden_width", 0, "'hidden_width'"),
    ("hidden_width", 1025, "'hidden_width'"),
    ("hidden_width", 0xFFFF, "'hidden_width'"),
    ("hidden_layers", 0, "'hidden_layers'"),
    ("hidden_layers", 33, "'hidden_layers'"),
    ("hidden_layers", 255, "'hidden_layers'"),
    ("omega0", 0.0, "'omega0'"),
    ("omega0", -30.0, "'omega0'"),
    ("omega0", float("nan"), "'omega0'"),
    ("omega0", float("inf"), "'omega0'"),
    ("omega0", 1e30, "'omega0'"),
    ("init_id", 1, "'init_id'"),
])
def test_fixed_field_out_of_range(field, value, word):
    assert_rejected(zero_file(**{field: value}), word)


@pytest.mark.parametrize("record, word", [
    (struct.pack("<eB", float("nan"), ZERO), "step"),
    (struct.pack("<eB", float("inf"), ZERO), "step"),
    (struct.pack("<eB", 0.0, ZERO), "step"),
    (struct.pack("<eB", -0.01, ZERO), "step"),
    (struct.pack("<eB", 0.01, 4), "model"),
    (struct.pack("<eB", 0.01, 0x80), "model"),
    (struct.pack("<eB", 0.01, 255), "model"),
    (struct.pack("<eBHe", 0.01, LAPLACE, 0, 1.0), "max_abs"),
    (struct.pack("<eBHe", 0.01, LAPLACE, 40000, 1.0), "max_abs"),
    (struct.pack("<eBHe", 0.01, LAPLACE, 5, 0.0), "scale"),
    (struct.pack("<eBHe", 0.01, LAPLACE, 5, float("nan")), "scale"),
    (struct.pack("<eBHe", 0.01, LAPLACE, 5, -1.0), "scale"),
    (struct.pack("<eBHeH", 0.01, SPARSE_LAPLACE, 5, 1.0, 0), "p_zero"),
    (struct.pack("<eBHeH", 0.01, SPARSE_LAPLACE, 5, float("nan"), 100), "scale"),
    (struct.pack("<eBHe", 0.01, SPARSE_LAPLACE, 5, 1.0), "header ends"),
    (struct.pack("<eBH", 0.01, HISTOGRAM, 256) + b"\x01" * 513, "max_abs"),
    (struct.pack("<eBH", 0.01, HISTOGRAM, 0xFFFF), "max_abs"),
    (struct.pack("<eBH", 0.01, HISTOGRAM, 1) + b"\x00\x00\x00", "all zero"),
    (struct.pack("<eBH", 0.01, HISTOGRAM, 1) + b"\x01\x01", "header ends"),  # one count missing
    (struct.pack("<eBH", 0.01, HISTOGRAM, 1) + b"\xff" * 6 + b"\x01\x01\x01", "varint"),
    (struct.pack("<eBH", 0.01, HISTOGRAM, 1) + b"\xff\xff\xff\xff\x7f\x01\x01", "out of range"),  # count 2**35-1
    (struct.pack("<e", 0.01), "header ends"),
    (struct.pack("<eBH", 0.01, LAPLACE, 5), "header ends"),
])
def test_tensor_record_out_of_range(record, word):
    head = fixed(hidden_layers=1) + zero_records(3) + record  # last, so a short record runs off the end
    assert_rejected(frame(head), word)


def test_too_many_and_too_few_records():
    assert_rejected(frame(fixed(hidden_layers=1) + zero_records(5)), "unexpected bytes")
    assert_rejected(frame(fixed(hidden_layers=1) + zero_records(3)), "header ends")


def test_huge_histogram_counts_are_handled():
    """Counts at the format's maximum (2**32 - 1) with garbage, empty and short payloads."""
    big = b"\xff\xff\xff\xff\x0f"  # varint of 2**32 - 1
    record = struct.pack("<eBH", 0.01, HISTOGRAM, 1) + big * 3
    head = fixed(hidden_width=4, hidden_layers=1) + record + zero_records(3)
    assert_rejected(frame(head, b""), "payload is empty")
    for payload in (b"\x00" * 4, b"\xff" * 4, bytes(range(256)) * 4):
        try:
            decode_array(frame(head, payload), device="cpu")
        except InrFormatError as exc:
            assert "payload" in str(exc)


# ---------------------------------------------------------------- payloads behind a valid CRC

def test_payload_garbage(good):
    head, payload = split(good)
    rng = np.random.default_rng(3)
    for n_words in (1, 2, len(payload) // 4, 1000):
        garbage = rng.integers(0, 2**32, n_words, dtype=np.uint64).astype("<u4").tobytes()
        assert_rejected(frame(head, garbage), "payload")


def test_payload_not_whole_words(good):
    head, payload = split(good)
    assert_rejected(frame(head, payload + b"\x00"), "multiple of 4")


def test_payload_far_shorter_than_symbols():
    """A large declared network with a one-word payload: fails (or decodes) fast, never hangs."""
    width, layers = 500, 8  # about 1.8M parameters, under the default limit
    records = b"".join(struct.pack("<eBHe", 0.01, LAPLACE, 32767, 2.0**-24) for _ in range(2 * (layers + 1)))
    head = fixed(width=4, height=4, hidden_width=width, hidden_layers=layers) + records
    assert_rejected(frame(head, b""), "payload is empty")
    for payload in (b"\x00" * 4, b"\xff" * 4, b"\x12\x34\x56\x78" * 3, b"\xff" * 4000):
        t0 = time.perf_counter()
        try:  # a few words can validly code millions of near-certain symbols; either outcome is fine
            decode_array(frame(head, payload), device="cpu")
        except InrFormatError as exc:
            assert "payload" in str(exc)
        assert time.perf_counter() - t0 < 5.0


def test_empty_payload_with_coded_tensors(good):
    head, _ = split(good)
    assert_rejected(frame(head, b""), "payload is empty")


def test_payload_with_no_coded_tensors():
    assert_rejected(frame(fixed() + zero_records(4), b"\x00" * 8), "no tensor is entropy-coded")


# ---------------------------------------------------------------- limits

def test_huge_network_is_refused_before_allocation():
    tracemalloc.start()
    try:
        msg = assert_rejected(zero_file(hidden_width=1024, hidden_layers=32), "parameters", "limit")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert str(bitstream.DEFAULT_MAX_PARAMETERS) in msg


def test_max_parameters_can_be_lowered(good):
    n = bitstream.read_header(good).to_dict()["parameters"]
    assert_rejected(good, "parameters", limits=DecodeLimits(max_parameters=n - 1))
    decode_array(good, device="cpu", limits=DecodeLimits(max_parameters=n))


def test_gigantic_image_with_tiny_network_is_refused_before_allocation():
    data = zero_file(width=65535, height=65535, hidden_width=2, hidden_layers=1)
    tracemalloc.start()
    try:
        msg = assert_rejected(data, "65535x65535", "limit")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert str(DEFAULT_MAX_PIXELS) in msg
    with pytest.raises(OptionError):  # also an OptionError, for callers that treat it as a limit problem
        decode(data)
    # the same file decodes fine at a size the caller asks for
    assert decode(data, res=64).size == (64, 64)


def test_max_pixels_option(good):
    assert decode(good, max_pixels=240).size == (20, 12)
    with pytest.raises(InrFormatError, match="limit of 239"):
        decode(good, max_pixels=239)
    with pytest.raises(OptionError, match="exceeds the limit"):
        decode(good, res=100, max_pixels=1000)
    for bad in (0, -1, 1.5, "10", True):
        with pytest.raises(OptionError, match="max_pixels"):
            decode(good, max_pixels=bad)


@pytest.mark.parametrize("kw", [dict(res=0), dict(res=-3), dict(res=10**9), dict(res=2.5), dict(size=(0, 5)),
                                dict(size=(5, -1)), dict(size=(10**6, 5)), dict(size="big"), dict(scale=0),
                                dict(scale=-1.0), dict(scale=float("nan")), dict(scale=float("inf")),
                                dict(scale=1e308), dict(scale=1e6), dict(res=10, scale=2.0)])
def test_bad_size_options_are_option_errors(good, kw):
    with pytest.raises(OptionError):
        decode(good, **kw)


def test_non_bytes_input_is_a_type_error():
    with pytest.raises(TypeError):
        decode("not bytes")


# ---------------------------------------------------------------- inr-info on hostile files

def test_info_on_hostile_files(tmp_path, capsys, good):
    from codec.cli import info_main

    cases = {"trunc.inr": good[:10], "flip.inr": good[:20] + bytes([good[20] ^ 4]) + good[21:],
             "empty.inr": b"", "huge.inr": zero_file(hidden_width=1024, hidden_layers=32)}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert info_main([str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("inr-info: error:") and err.count("\n") == 1, err


# ---------------------------------------------------------------- determinism

def test_decoding_is_deterministic(good):
    first = decode_array(good, device="cpu", res=97)
    for _ in range(3):
        assert np.array_equal(decode_array(good, device="cpu", res=97), first)


def test_thread_count_does_not_change_pixels(good):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode_array(good, device="cpu", res=300).astype(int)
        torch.set_num_threads(2)
        two = decode_array(good, device="cpu", res=300).astype(int)
    finally:
        torch.set_num_threads(before)
    assert np.abs(one - two).max() <= 1  # measured 0 (see benchmarks/results/robustness/determinism.md)


def test_nan_weights_render_to_defined_pixels():
    """Steps and symbols at the format's maximum overflow float32; the output must still be defined."""
    rng = np.random.default_rng(0)
    shapes = bitstream.tensor_shapes(bitstream.SIREN, 8, 2, 3)
    symbols = [np.full(s, 32767, dtype=np.int32) for s in shapes]
    records = tuple(TensorRecord(65504.0, TensorModel(LAPLACE, 32767, scale=1.0)) for _ in shapes)
    header = Header(width=7, height=5, channels=3, arch=1, hidden_width=8, hidden_layers=2, omega0=1000.0,
                    init_id=0, tensors=records)
    data = bitstream.write_file(header, symbols)
    a = decode_array(data, device="cpu")
    b = decode_array(data, device="cpu")
    assert a.shape == (5, 7, 3) and np.array_equal(a, b)
    del rng
