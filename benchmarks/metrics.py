"""Image quality metrics on 8-bit RGB: MSE, PSNR and MS-SSIM (numpy only).

Definitions (also in benchmarks/README.md):

* **MSE / PSNR** — on the 8-bit RGB arrays as integers, averaged over all
  pixels and all three channels; ``PSNR = 10 log10(255^2 / MSE)``.  An exact
  (lossless) reconstruction has MSE 0 and is reported as ``PSNR_CAP`` dB so the
  JSON stays finite.
* **MS-SSIM** — Wang, Simoncelli & Bovik (2003), the same recipe as
  ``pytorch_msssim.ms_ssim`` used by CompressAI: computed on each RGB channel
  with data range 255, an 11-tap Gaussian window (sigma 1.5) applied as a
  "valid" separable filter, K1 = 0.01, K2 = 0.03, five scales with weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales
  (an odd trailing row/column is dropped), contrast-structure terms of the
  first M-1 scales and the full SSIM of the last scale, negative terms clamped
  to 0, and the per-channel values averaged.

  Images too small for five scales: the number of scales M is the largest
  (at most 5) for which the smallest side after M-1 halvings is still >= 11
  (five scales need a smallest side >= 176; a 128-pixel side gets 4), and the
  first M weights are renormalised to sum to 1 (with all five scales the
  published weights are used as they are).  Below 11 pixels the window is
  shrunk to the largest odd size that fits.  Both are returned by
  :func:`ms_ssim_details` and recorded per image.
"""
from __future__ import annotations

import math

import numpy as np

PSNR_CAP = 100.0
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0


def as_rgb_array(img) -> np.ndarray:
    """An HxWx3 uint8 array from a PIL image or an HxWx3 / HxW uint8 array."""
    if hasattr(img, "convert"):
        img = np.asarray(img.convert("RGB"))
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")


def mse(a, b) -> float:
    """Mean squared error over all pixels and channels of two 8-bit RGB images."""
    a, b = as_rgb_array(a), as_rgb_array(b)
    _check_pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr_from_mse(m: float) -> float:
    """PSNR in dB for 8-bit data; MSE 0 gives ``PSNR_CAP``."""
    if m <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(DATA_RANGE**2 / m))


def psnr(a, b) -> float:
    """PSNR in dB of two 8-bit RGB images (MSE over all pixels and channels)."""
    return psnr_from_mse(mse(a, b))


def _gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of an HxWxC array with the 1-D kernel g."""
    n = len(g)
    h, w = x.shape[0] - n + 1, x.shape[1] - n + 1
    rows = sum(g[i] * x[i : i + h] for i in range(n))
    return sum(g[i] * rows[:, i : i + w] for i in range(n))


def _ssim_cs(x: np.ndarray, y: np.ndarray, g: np.ndarray):
    """Per-channel mean SSIM and contrast-structure term (arrays of length C)."""
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mu_x**2
    syy = _filter_valid(y * y, g) - mu_y**2
    sxy = _filter_valid(x * y, g) - mu_x * mu_y
    cs_map = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.mean(axis=(0, 1)), cs_map.mean(axis=(0, 1))


def _pool2(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim_scales(height: int, width: int) -> tuple[int, int]:
    """(number of scales, window size) used for an image of this size."""
    side = min(height, width)
    win = WIN_SIZE if side >= WIN_SIZE else max(1, side if side % 2 else side - 1)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2**scales >= win:
        scales += 1
    return scales, win


def ms_ssim_details(a, b) -> dict:
    """MS-SSIM of two 8-bit RGB images, with the scales and window actually used.

    Returns:
        ``{"ms_ssim": float, "scales": int, "win_size": int}``.
    """
    a, b = as_rgb_array(a), as_rgb_array(b)
    _check_pair(a, b)
    scales, win = ms_ssim_scales(a.shape[0], a.shape[1])
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales], dtype=np.float64)
    if scales < len(MS_SSIM_WEIGHTS):  # the standard five are used as published (they sum to 1.0001)
        weights = weights / weights.sum()
    g = _gaussian(win, WIN_SIGMA)
    x, y = a.astype(np.float64), b.astype(np.float64)
    terms = []
    for s in range(scales):
        ssim_c, cs_c = _ssim_cs(x, y, g)
        terms.append(np.maximum(cs_c if s < scales - 1 else ssim_c, 0.0))
        if s < scales - 1:
            x, y = _pool2(x), _pool2(y)
    per_channel = np.prod([t ** w for t, w in zip(terms, weights)], axis=0)
    return {"ms_ssim": float(per_channel.mean()), "scales": scales, "win_size": win}


def ms_ssim(a, b) -> float:
    """MS-SSIM in [0, 1] of two 8-bit RGB images (see the module docstring)."""
    return ms_ssim_details(a, b)["ms_ssim"]


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, ``-10 log10(1 - MS-SSIM)`` (capped like PSNR)."""
    if value >= 1.0:
        return PSNR_CAP
    return min(PSNR_CAP, -10.0 * math.log10(1.0 - value))
