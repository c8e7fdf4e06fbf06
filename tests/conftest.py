"""Shared fixtures: tiny synthetic images and fast encodes (fixed architecture, few steps)."""
from __future__ import annotations

import numpy as np
import pytest

from dataclasses import fields

from codec.config import EncoderConfig, MlpSettings
from codec.encoding import encode_pixels


def smooth_image(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic image a small SIREN fits well in a few steps."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = []
    for _ in range(channels):
        fx, fy, ph = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 6.28)
        planes.append(127.5 + 100 * np.sin(fx * 6.28 * x / width + ph) * np.cos(fy * 3.14 * y / height))
    return np.clip(np.stack(planes, axis=2), 0, 255).astype(np.uint8)


MLP_FIELDS = {f.name for f in fields(MlpSettings)}


def mlp_config(**settings) -> EncoderConfig:
    """An EncoderConfig from flat keywords: MlpSettings' fields go to its `mlp`, the rest are its own."""
    mlp = MlpSettings(**{k: v for k, v in settings.items() if k in MLP_FIELDS})
    return EncoderConfig(mlp=mlp, **{k: v for k, v in settings.items() if k not in MLP_FIELDS})


def quick_config(**overrides) -> EncoderConfig:
    # no warm-up: these tiny fits test round trips, and 150 plain steps fit a 16x2 SIREN smoothly
    settings = dict(hidden_width=16, hidden_layers=2, bits=8, steps=150, lr=3e-3, warmup_fraction=0.0, device="cpu", seed=0)
    settings.update(overrides)
    return mlp_config(**settings)


@pytest.fixture(scope="session")
def rgb_12x20():
    return smooth_image(12, 20, 3)


@pytest.fixture(scope="session")
def gray_20x12():
    return smooth_image(20, 12, 1, seed=1)


@pytest.fixture(scope="session")
def rgb_file(rgb_12x20):
    """(pixels, EncodeResult) of a quick RGB encode, shared by many tests."""
    return rgb_12x20, encode_pixels(rgb_12x20, quick_config())
