"""Quality metrics on 8-bit images."""
from __future__ import annotations

import math

import numpy as np


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two uint8 arrays of the same shape, in 8-bit units."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (peak 255); inf for identical images."""
    err = mse(a, b)
    return math.inf if err == 0 else 10.0 * math.log10(255.0**2 / err)


def psnr_from_mse(err: float) -> float:
    """PSNR in dB for an MSE in 8-bit units."""
    return math.inf if err == 0 else 10.0 * math.log10(255.0**2 / err)
