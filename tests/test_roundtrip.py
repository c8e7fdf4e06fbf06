"""Round trips through encoder, bytes and decoder on tiny non-square images."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

import bitstream
import codec
from codec.encoding import encode_pixels
from codec.metrics import psnr

from conftest import quick_config, smooth_image


def test_rgb_round_trip_reports_psnr_of_decoded_file(rgb_file):
    pixels, result = rgb_file
    decoded = np.asarray(codec.decode(result.data, device="cpu"))
    assert decoded.shape == (12, 20, 3)
    assert result.psnr == pytest.approx(psnr(decoded, pixels), abs=1e-9)
    assert result.bpp == 8 * len(result.data) / (12 * 20)
    assert result.psnr > 20  # a smooth image, 16x2 SIREN, 60 steps


def test_grayscale_is_one_channel(gray_20x12):
    result = encode_pixels(gray_20x12, quick_config())
    header = bitstream.read_header(result.data)
    assert header.channels == 1 and (header.width, header.height) == (12, 20)
    img = codec.decode(result.data, device="cpu")
    assert img.mode == "L" and img.size == (12, 20)
    assert result.psnr == pytest.approx(psnr(np.asarray(img)[:, :, None], gray_20x12), abs=1e-9)


def test_decoder_uses_exactly_the_weights_the_encoder_evaluated(rgb_file):
    _, result = rgb_file
    header, symbols = bitstream.read_file(result.data)
    weights = bitstream.dequantize(header, symbols)
    for w, rec, sym in zip(weights, header.tensors, symbols):
        assert w.dtype == np.float32
        assert np.array_equal(w, sym.astype(np.float32) * np.float32(rec.step))


@pytest.mark.parametrize(
    "options, size",
    [({}, (20, 12)), ({"res": 40}, (40, 24)), ({"res": 5}, (5, 3)), ({"size": (7, 31)}, (7, 31)),
     ({"scale": 2.5}, (50, 30)), ({"scale": 0.05}, (1, 1))],
)
def test_decode_at_other_sizes(rgb_file, options, size):
    _, result = rgb_file
    img = codec.decode(result.data, device="cpu", **options)
    assert img.size == size and img.mode == "RGB"


def test_upscaled_decode_agrees_with_original_size(rgb_file):
    """Decoding at 2x samples the same continuous image: its 2x2 means are close to the 1x decode."""
    _, result = rgb_file
    small = np.asarray(codec.decode(result.data, device="cpu")).astype(float)
    big = np.asarray(codec.decode(result.data, device="cpu", scale=2)).astype(float)
    pooled = big.reshape(12, 2, 20, 2, 3).mean(axis=(1, 3))
    assert np.abs(pooled - small).mean() < 6


def test_chunked_rendering_matches_single_chunk(rgb_file, monkeypatch):
    _, result = rgb_file
    whole = np.asarray(codec.decode(result.data, device="cpu", res=64))
    import codec.decoding.render as render

    monkeypatch.setattr(render, "CHUNK_ACTIVATIONS", 16 * 64)  # one row per chunk
    rows = np.asarray(codec.decode(result.data, device="cpu", res=64))
    assert np.array_equal(whole, rows)


def test_seed_and_steps_make_encoding_reproducible(rgb_12x20):
    a = encode_pixels(rgb_12x20, quick_config(steps=20, seed=3)).data
    b = encode_pixels(rgb_12x20, quick_config(steps=20, seed=3)).data
    c = encode_pixels(rgb_12x20, quick_config(steps=20, seed=4)).data
    assert a == b and a != c


def test_rate_control_meets_the_target_closely():
    pixels = smooth_image(24, 40, 3, seed=2)
    for target in (6.0, 12.0):
        result = codec.encode_with_stats(pixels, bpp=target, steps=40, device="cpu")
        assert result.bpp <= target
        assert result.bpp >= 0.85 * target


def test_too_low_bpp_target_is_an_option_error():
    with pytest.raises(codec.OptionError, match="too low"):
        codec.encode(smooth_image(12, 20, 3), bpp=0.5, steps=5, device="cpu")


def test_pruning_zeroes_weights_and_they_cost_little():
    pixels = smooth_image(24, 40, 3, seed=5)
    dense = encode_pixels(pixels, quick_config(hidden_width=32, steps=80))
    sparse = encode_pixels(pixels, quick_config(hidden_width=32, steps=80, sparsity=0.5))
    header, symbols = bitstream.read_file(sparse.data)
    hidden = symbols[2]  # the 32x32 hidden weight matrix
    assert np.mean(hidden == 0) >= 0.5
    assert len(sparse.data) < 0.75 * len(dense.data)


def test_library_accepts_arrays_images_paths_and_streams(tmp_path, rgb_12x20):
    path = tmp_path / "in.png"
    Image.fromarray(rgb_12x20).save(path)
    opts = dict(bpp=None, preset=None, steps=10, device="cpu")
    from_array = codec.encode(rgb_12x20, **opts)
    from_path = codec.encode(path, **opts)
    from_image = codec.encode(Image.open(path), **opts)
    assert bitstream.read_header(from_array) == bitstream.read_header(from_path)
    assert from_image == from_path
    buf = io.BytesIO()
    n = codec.encode_to(rgb_12x20, buf, steps=10, device="cpu")
    assert n == len(buf.getvalue())
    buf.seek(0)
    assert codec.decode_from(buf, device="cpu").size == (20, 12)


def test_decoding_is_thread_safe(rgb_file):
    _, result = rgb_file
    expected = np.asarray(codec.decode(result.data, device="cpu", res=48))
    outputs, errors = [], []

    def work():
        try:
            outputs.append(np.asarray(codec.decode(result.data, device="cpu", res=48)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(outputs) == 4
    assert all(np.array_equal(o, expected) for o in outputs)


@pytest.mark.parametrize("data, message", [(b"", "wrong magic"), (b"GIF89a" + b"\0" * 40, "wrong magic")])
def test_bad_bytes_raise_the_documented_error(data, message):
    with pytest.raises(codec.InrFormatError, match=message):
        codec.decode(data)


def test_truncated_and_corrupted_files_raise_the_documented_error(rgb_file):
    _, result = rgb_file
    data = result.data
    for n in range(4, len(data)):
        with pytest.raises(codec.InrFormatError):
            codec.decode(data[:n])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(codec.InrFormatError, match="checksum"):
        codec.decode(bytes(flipped))
    assert issubclass(codec.InrFormatError, ValueError)


@pytest.mark.slow
def test_bundled_sample_meets_rate_and_a_measured_quality_bound():
    """A real photo crop at the default preset: at most 0.3 bpp, and a PSNR we measured (25.2 dB at
    2000 steps; 23.9 dB at 300) with a margin."""
    from importlib.resources import files

    path = files("codec") / "samples" / "kodim23_crop128.png"
    result = codec.encode_with_stats(str(path), steps=300, device="cpu")
    assert result.bpp <= 0.3 and result.bpp >= 0.27
    assert result.psnr > 23.0
