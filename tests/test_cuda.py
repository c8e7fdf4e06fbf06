"""The CUDA path: run only where a CUDA GPU is present (skipped elsewhere; benchmarks/gpu_runbook.sh runs them)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import decode
from codec.config import EncoderConfig
from codec.decoding.decoder import decode_array
from codec.encoding import encode_pixels
from codec.encoding.stacked import encode_many

from conftest import smooth_image

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def cuda_file():
    pixels = smooth_image(64, 96, 3, seed=7)
    return pixels, encode_pixels(pixels, EncoderConfig(bpp=2.0, steps=300, device="cuda"))


def test_cuda_encode_decodes_on_cpu_and_cuda_alike(cuda_file):
    pixels, result = cuda_file
    assert result.device.startswith("cuda") and result.bpp <= 2.0
    on_cpu = decode_array(result.data, device="cpu", backend="torch")
    on_numpy = decode_array(result.data, backend="numpy")
    on_cuda = decode_array(result.data, device="cuda", backend="torch")
    assert on_cpu.shape == on_cuda.shape == on_numpy.shape == pixels.shape
    for other in (on_cuda, on_numpy):  # float32 on different hardware: at most one level apart, rarely
        diff = np.abs(on_cpu.astype(int) - other.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    err = np.mean((on_cpu.astype(float) - pixels) ** 2)
    assert abs(10 * np.log10(255**2 / err) - result.psnr) < 0.01  # the encoder scored the CUDA decode
    assert result.psnr > 25


def test_cuda_decode_at_another_size(cuda_file):
    _, result = cuda_file
    assert decode(result.data, res=256, device="cuda").size == (256, 171)


def test_cuda_encode_is_reproducible(cuda_file):
    pixels, result = cuda_file
    again = encode_pixels(pixels, EncoderConfig(bpp=2.0, steps=300, device="cuda"))
    assert again.data == result.data


def test_stacked_on_cuda_matches_single_on_cuda(cuda_file):
    pixels, single = cuda_file
    images = [pixels, smooth_image(96, 64, 3, seed=8)]
    many = encode_many(images, EncoderConfig(bpp=2.0, steps=300, device="cuda"))
    assert many[0].device.startswith("cuda")
    # float rounding of the batched products lets the two trajectories drift apart over 300 steps at
    # 41 dB: 0.45 dB apart on an H200 (benchmarks/results/kodak_gpu_h200), 0.001 dB on the CPU
    assert abs(many[0].psnr - single.psnr) < 1.0
    assert all(r.bpp <= 2.0 for r in many)


@pytest.fixture(scope="module")
def cuda_latent_file():
    pixels = smooth_image(128, 192, 3, seed=5)
    return pixels, encode_pixels(pixels, EncoderConfig(bpp=3.0, steps=300, arch="latent", device="cuda"))


def test_cuda_latent_encode_decodes_on_cpu_and_cuda_alike(cuda_latent_file):
    """The latent family on CUDA: the file decodes to the same symbols anywhere (the entropy decoder
    runs on the CPU with integer contexts), and to pixels at most one level apart on the CPU, in numpy
    and on CUDA; the encoder's PSNR is that of the decoded file."""
    pixels, result = cuda_latent_file
    assert result.device.startswith("cuda") and result.arch == "latent" and result.bpp <= 3.0
    on_cpu = decode_array(result.data, device="cpu", backend="torch")
    on_numpy = decode_array(result.data, backend="numpy")
    on_cuda = decode_array(result.data, device="cuda", backend="torch")
    assert on_cpu.shape == on_cuda.shape == on_numpy.shape == pixels.shape
    for other in (on_cuda, on_numpy):
        diff = np.abs(on_cpu.astype(int) - other.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    err = np.mean((on_cpu.astype(float) - pixels) ** 2)
    assert abs(10 * np.log10(255**2 / err) - result.psnr) < 0.05
    assert result.psnr > 25


def test_cuda_latent_decode_at_another_size(cuda_latent_file):
    _, result = cuda_latent_file
    assert decode(result.data, res=384, device="cuda").size == (384, 256)


def test_cuda_latent_encode_is_reproducible(cuda_latent_file):
    """Whole-image steps by interpolation matrices and the rate's one-hot scales have no atomic adds, so the
    same settings give the same bytes on CUDA (grid_sample's and an index's backward did not: on an H100 two
    200-step encodes gave 26.76 and 26.67 dB, benchmarks/DECISIONS.md, GPU runs)."""
    pixels, result = cuda_latent_file
    again = encode_pixels(pixels, EncoderConfig(bpp=3.0, steps=300, arch="latent", device="cuda"))
    assert again.data == result.data
