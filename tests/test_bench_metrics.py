"""PSNR and MS-SSIM of benchmarks.metrics."""
import math

import numpy as np
import pytest

from benchmarks import metrics


def _smooth(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], -1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def test_psnr_by_hand():
    a = np.full((12, 20, 3), 100, np.uint8)
    b = a + 5
    assert metrics.mse(a, b) == 25.0
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    assert metrics.psnr(a, a) == metrics.PSNR_CAP


def test_ms_ssim_identity_symmetry_range():
    a = _smooth(200, 180)
    b = np.clip(a.astype(int) + np.random.default_rng(1).integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0)
    v = metrics.ms_ssim(a, b)
    assert 0 < v < 1
    assert metrics.ms_ssim(b, a) == pytest.approx(v)
    assert metrics.ms_ssim_details(a, b)["scales"] == 5


@pytest.mark.parametrize("h,w,scales,win", [(512, 768, 5, 11), (176, 300, 5, 11), (175, 300, 4, 11),
                                            (128, 192, 4, 11), (16, 24, 1, 11), (12, 20, 1, 11), (8, 5, 1, 5)])
def test_scales_reduced_for_small_images(h, w, scales, win):
    assert metrics.ms_ssim_scales(h, w) == (scales, win)
    a = _smooth(h, w)
    d = metrics.ms_ssim_details(a, a)
    assert (d["scales"], d["win_size"]) == (scales, win) and d["ms_ssim"] == pytest.approx(1.0)


def _noisy_pair():
    a = _smooth(256, 192)
    b = np.clip(a.astype(int) + np.random.default_rng(2).integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_matches_pytorch_msssim_reference_value():
    # pytorch_msssim 1.0.0: ms_ssim(a, b, data_range=255) on float64 NCHW tensors of this pair
    a, b = _noisy_pair()
    assert metrics.ms_ssim(a, b) == pytest.approx(0.7842512372226226, abs=1e-5)


def test_matches_pytorch_msssim_when_installed():
    torch = pytest.importorskip("torch")
    ref = pytest.importorskip("pytorch_msssim")
    a, b = _noisy_pair()
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].double()  # noqa: E731
    assert metrics.ms_ssim(a, b) == pytest.approx(ref.ms_ssim(t(a), t(b), data_range=255).item(), abs=1e-5)
