"""Stacked encoding (codec.stacked): many fits in one batched network give what single encodes give."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import decode
from codec.config import EncoderConfig
from codec.encoder import encode_pixels
from codec.errors import OptionError
from codec.siren import Siren
from codec.stacked import StackedSiren, encode_many

from conftest import smooth_image


def test_stacked_forward_matches_each_network():
    torch.manual_seed(0)
    models = [Siren(channels=3, hidden_width=12, hidden_layers=3) for _ in range(3)]
    stack = StackedSiren(models)
    coords = torch.rand(3, 50, 2) * 2 - 1
    out = stack.forward(stack.params, coords)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(coords[i]), atol=2e-5, rtol=1e-4)


def _images():
    # two landscape images and one portrait one of the same pixel count: one stacked group
    return [smooth_image(32, 48, 3, seed=1), smooth_image(48, 32, 3, seed=2), smooth_image(32, 48, 3, seed=3)]


def test_stacked_files_match_single_encodes():
    config = EncoderConfig(bpp=4.0, steps=240, device="cpu", batch_pixels=1 << 20)
    images = _images()
    many = encode_many(images, config)
    for pixels, stacked in zip(images, many):
        single = encode_pixels(pixels, config)
        assert (stacked.width, stacked.height) == (pixels.shape[1], pixels.shape[0])
        assert (stacked.hidden_width, stacked.hidden_layers, stacked.steps) == (single.hidden_width, single.hidden_layers, single.steps)
        assert stacked.bytes <= 4.0 * pixels.shape[0] * pixels.shape[1] / 8
        assert abs(stacked.psnr - single.psnr) < 0.05, (stacked.psnr, single.psnr)  # float rounding only
        decoded = np.asarray(decode(stacked.data))
        err = np.mean((decoded.astype(float) - pixels) ** 2)
        assert abs(10 * np.log10(255**2 / err) - stacked.psnr) < 1e-6  # the reported PSNR is the file's
        assert stacked.psnr > 25


def test_stacked_random_pixel_batches_match_single_encodes():
    # 512 of 1536 pixels per step: every image of the group gets the pixels its single encode draws
    config = EncoderConfig(bpp=4.0, steps=300, device="cpu", batch_pixels=512)
    images = _images()
    for pixels, stacked in zip(images, encode_many(images, config)):
        single = encode_pixels(pixels, config)
        assert abs(stacked.psnr - single.psnr) < 0.05, (stacked.psnr, single.psnr)
        assert stacked.psnr > 24


def test_groups_split_by_network_and_memory_bound():
    config = EncoderConfig(bpp=4.0, steps=60, device="cpu")
    images = _images() + [smooth_image(40, 40, 3, seed=4)]  # another pixel count: its own group
    results = encode_many(images, config, group_bytes=1)  # one image per stacked step
    assert [(r.width, r.height) for r in results] == [(48, 32), (32, 48), (48, 32), (40, 40)]
    assert all(r.steps == 60 for r in results)


def test_stacked_refuses_what_it_cannot_do():
    pixels = [smooth_image(16, 24, 3)]
    with pytest.raises(OptionError, match="prune"):
        encode_many(pixels, EncoderConfig(bpp=2.0, steps=10, device="cpu", sparsity=0.5))
    with pytest.raises(OptionError, match="time budget"):
        encode_many(pixels, EncoderConfig(bpp=2.0, steps=10, device="cpu", time_budget=5.0))
    with pytest.raises(OptionError, match="step count"):
        encode_many(pixels, EncoderConfig(bpp=2.0, device="cpu"))


def test_a_stacked_fit_that_does_not_learn_is_encoded_again_alone():
    # lr 1e4 throws every stacked fit off; the single encoder then restarts (and falls back to the flat image)
    config = EncoderConfig(hidden_width=16, hidden_layers=3, bits=8, steps=400, lr=1e4, device="cpu")
    image = smooth_image(16, 24, 3, seed=5)
    [stacked] = encode_many([image], config)
    single = encode_pixels(image, config)
    assert stacked.fit_attempts == single.fit_attempts > 1
    assert stacked.data == single.data
