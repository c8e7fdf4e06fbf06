"""Decodes below the stored size: Pillow's Lanczos kernel, streamed row chunks, and the decoder's
band-limited path (the stored-density render filtered, bounded per output pixel)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import bitstream
import codec
from benchmarks.robustness.fuzz_inr import crafted_file
from bitstream import LAPLACE
from bitstream.container import decode_payload, split_file
from codec.decoding.numpy_render import render_chunks, render_image, to_uint8
from codec.decoding.resample import OVERSAMPLE, _along, downscale_rows, evaluation_size, lanczos_taps
from codec.metrics import psnr


def _pillow_lanczos(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) float -> (h, w, C) with Pillow's LANCZOS on float ("F") images, channel by channel."""
    return np.stack([np.asarray(Image.fromarray(values[:, :, c].astype(np.float32), "F")
                                .resize(size, Image.Resampling.LANCZOS)) for c in range(values.shape[2])], axis=2)


def test_lanczos_taps_are_pillows_kernel():
    values = np.random.default_rng(0).normal(size=(37, 53, 2)).astype(np.float32)
    for size in ((13, 7), (53, 9), (1, 1), (26, 37)):
        ours = values
        if size[0] < 53:
            ours = _along(ours, lanczos_taps(size[0], 53), 1)
        if size[1] < 37:
            ours = _along(ours, lanczos_taps(size[1], 37), 0)
        np.testing.assert_allclose(ours, _pillow_lanczos(values, size), atol=2e-5)
    idx, w = lanczos_taps(10, 80)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-6)
    assert (np.diff(idx, axis=0) >= 0).all() and idx.min() == 0 and idx.max() == 79
    with pytest.raises(ValueError):
        lanczos_taps(5, 4)


def test_streamed_chunks_give_the_one_pass_result():
    values = np.random.default_rng(1).normal(size=(61, 45, 3)).astype(np.float32)
    whole = _pillow_lanczos(values, (11, 8))
    for rows in (1, 5, 17, 61):
        chunks = ((s, min(61, s + rows), values[s:s + rows]) for s in range(0, 61, rows))
        parts = list(downscale_rows(chunks, (45, 61), (11, 8)))
        assert [p[0] for p in parts] == sorted(p[0] for p in parts) and parts[-1][1] == 8
        np.testing.assert_allclose(np.concatenate([p[2] for p in parts]), whole, atol=2e-5)
    same_height = list(downscale_rows(((0, 61, values),), (45, 61), (9, 61)))
    np.testing.assert_allclose(same_height[0][2], _pillow_lanczos(values, (9, 61)), atol=2e-5)


def test_evaluation_size_follows_the_output_and_the_limit():
    assert evaluation_size((768, 512), (384, 256), 10**9) == (768, 512)
    assert evaluation_size((768, 512), (768 // OVERSAMPLE, 64), 10**9) == (768, 512)
    assert evaluation_size((768, 512), (48, 32), 10**9) == (48 * OVERSAMPLE, 32 * OVERSAMPLE)
    assert evaluation_size((100, 50), (200, 25), 10**9) == (200, 50)  # up along x, down along y
    assert evaluation_size((768, 512), (768, 512), 10) == (768, 512)  # nothing to filter
    w, h = evaluation_size((4000, 4000), (100, 100), 160_000)
    assert 100 <= w <= 400 and w * h <= 160_000
    w, h = evaluation_size((4000, 4000), (10, 4000), 200_000)  # the narrow side held at the output
    assert (w, h) == (10, 4000) or (w >= 10 and h == 4000 and w * h <= 200_000)
    assert w * h <= 200_000


@pytest.fixture(scope="module")
def noisy_latent_file() -> bytes:
    """A 96x64 latent-grid file with random latents: detail at every scale, so point sampling aliases."""
    return crafted_file(np.random.default_rng(3), channels=3, hidden_width=8, hidden_layers=1, width=96, height=64,
                        kinds=(LAPLACE,), arch=bitstream.LATENT, latent_levels=3, latent_channels=2)


def _stored_values(data: bytes) -> tuple[bitstream.Header, list[np.ndarray], np.ndarray]:
    header, payload = split_file(data)
    weights = bitstream.dequantize(header, decode_payload(header, payload))
    values = np.concatenate([v for _, _, v in render_chunks(header, weights, header.height, header.width)])
    return header, weights, values


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_downscaled_decode_is_the_stored_render_filtered(noisy_latent_file, backend):
    header, _, values = _stored_values(noisy_latent_file)
    for size in ((24, 16), (48, 64), (12, 8)):
        expected = to_uint8(_pillow_lanczos(np.clip(values, -1, 1), size))
        got = np.asarray(codec.decode(noisy_latent_file, size=size, backend=backend))
        assert got.shape == (size[1], size[0], 3)
        assert np.abs(got.astype(int) - expected).max() <= 1


def test_downscaled_decode_is_far_from_the_aliased_point_samples(noisy_latent_file):
    header, weights, values = _stored_values(noisy_latent_file)
    full = np.asarray(codec.decode(noisy_latent_file))
    for size in ((24, 16), (12, 8)):
        ref = np.asarray(Image.fromarray(full).resize(size, Image.Resampling.LANCZOS))
        direct = np.asarray(codec.decode(noisy_latent_file, size=size))
        point = render_image(header, weights, size[1], size[0])
        assert psnr(direct, ref) > 40.0  # the stored decode resized, up to 8-bit rounding
        assert psnr(direct, ref) > psnr(point, ref) + 10.0


def test_a_small_thumbnail_of_a_large_file_evaluates_at_most_oversample_per_output_pixel(monkeypatch):
    from codec.decoding import numpy_render

    data = crafted_file(np.random.default_rng(4), channels=1, hidden_width=4, hidden_layers=1, width=4000, height=3000,
                        kinds=(LAPLACE,), arch=bitstream.LATENT, latent_levels=2, latent_channels=1)
    seen = []

    def recording(header, weights, height, width):
        seen.append((width, height))
        return render_chunks(header, weights, height, width)

    monkeypatch.setattr(numpy_render, "render_chunks", recording)
    assert np.asarray(codec.decode(data, size=(16, 12), backend="numpy")).shape == (12, 16)
    assert seen == [(16 * OVERSAMPLE, 12 * OVERSAMPLE)]
