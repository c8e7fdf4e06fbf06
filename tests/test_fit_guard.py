"""The fit cannot fail silently: warm-up, learning check with restarts, flat-image fallback, planned steps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.config import EncoderConfig, StepPlan, plan_steps, warmup_steps
from codec.encoder import encode_pixels
from codec.fitting import Phase, lr_factor
from codec.metrics import psnr
from codec.siren import LR_REFERENCE_WIDTH, Siren, siren_lr_scales

from conftest import quick_config, smooth_image


def flat_psnr(pixels: np.ndarray) -> float:
    flat = np.round(pixels.reshape(-1, pixels.shape[2]).mean(axis=0))
    return psnr(np.broadcast_to(flat, pixels.shape).astype(np.uint8), pixels)


def test_a_fit_that_does_not_learn_is_restarted_and_beats_a_flat_image():
    pixels = smooth_image(24, 32, 3, seed=2)
    # lr 0.05 without warm-up wrecks the first attempt (measured); the restart at lr/4 learns
    result = encode_pixels(pixels, quick_config(steps=400, lr=0.05, hidden_width=24, qat_fraction=0.0))
    assert result.fit_attempts == 2
    assert not result.flat_fallback
    assert result.psnr > flat_psnr(pixels) + 3


def test_when_every_attempt_fails_the_file_holds_the_flat_image():
    pixels = smooth_image(24, 32, 3, seed=2)
    result = encode_pixels(pixels, quick_config(steps=400, lr=1e4, hidden_width=24))
    assert result.fit_attempts == 3 and result.flat_fallback
    assert result.psnr == pytest.approx(flat_psnr(pixels), abs=0.05)


def test_a_flat_image_is_not_flagged_as_a_failed_fit():
    pixels = np.full((16, 20, 3), 77, dtype=np.uint8)
    result = encode_pixels(pixels, quick_config(steps=400))
    assert result.fit_attempts == 1
    assert result.psnr > 45


def test_warmup_then_cosine_schedule():
    phase = Phase("fit", steps=1000, lr=1.0, warmup_steps=100)
    assert lr_factor(1, phase) == pytest.approx(0.01, rel=0.01)
    assert lr_factor(50, phase) == pytest.approx(0.5 * lr_factor(100, phase) * 100 / 100 * 1, rel=0.02)
    assert lr_factor(100, phase) > 0.97
    assert lr_factor(500, phase) == pytest.approx(0.05 + 0.95 * 0.5, rel=1e-6)
    assert lr_factor(1000, phase) == pytest.approx(0.05)
    assert warmup_steps(1000, 0.05) == 50 and warmup_steps(4000, 0.05) == 200 and warmup_steps(100, 0.05) == 25
    assert warmup_steps(1000, 0.0) == 0


def test_wide_layers_get_smaller_learning_rates():
    narrow = siren_lr_scales(Siren(channels=3, hidden_width=LR_REFERENCE_WIDTH, hidden_layers=3), "width")
    assert narrow == (1.0,) * 8
    wide = siren_lr_scales(Siren(channels=3, hidden_width=4 * LR_REFERENCE_WIDTH, hidden_layers=3), "width")
    assert wide == (1.0, 1.0) + (0.25,) * 6  # the first layer (fan-in 2) keeps the full rate
    assert siren_lr_scales(Siren(channels=3, hidden_width=400, hidden_layers=3), "none") == (1.0,) * 8


def plan(**cfg):
    config = EncoderConfig(**cfg).validated()
    return plan_steps(config, device_type=cfg.get("device", "cpu"), pixels=768 * 512, batch_pixels=1 << 14,
                      hidden_width=76, hidden_layers=7, channels=3)


def test_steps_are_planned_up_front_and_the_budget_is_only_a_cap():
    default = plan(device="cpu")
    assert default.source == "budget" and default.time_cap == 150.0
    assert default == plan(device="cpu")  # a pure function of the image and network size: no clock
    assert 500 < default.steps < 5000
    assert plan(device="cpu", time_budget=75.0).steps == pytest.approx(default.steps / 2, rel=0.01)
    assert plan(device="cpu", steps=123) == StepPlan(123, None, "steps")
    assert plan(device="cpu", steps=123, time_budget=9.0) == StepPlan(123, 9.0, "steps")


def test_same_image_and_seed_give_the_same_bytes_under_a_time_budget(monkeypatch):
    import codec.config

    # a slow modelled step: the 60 s budget plans MIN_PLANNED_STEPS steps, far inside the cap
    monkeypatch.setattr(codec.config, "CPU_SECONDS_PER_STEP", 1.0)
    pixels = smooth_image(16, 24, 3, seed=5)
    first = encode_pixels(pixels, EncoderConfig(bpp=8.0, device="cpu", time_budget=60.0))
    second = encode_pixels(pixels, EncoderConfig(bpp=8.0, device="cpu", time_budget=60.0))
    assert first.steps == codec.config.MIN_PLANNED_STEPS
    assert not first.time_capped and not second.time_capped
    assert first.data == second.data
