"""Stacked encoding (codec.encoding.stacked): many fits in one batched network give what single encodes give."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bitstream

from codec import decode
from codec.config import EncoderConfig, MlpSettings
from codec.encoding import encode_pixels
from codec.errors import OptionError
from codec.families.siren.model import Siren
from codec.encoding.stacked import StackedSiren, encode_many

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_stacked_fit_that_does_not_learn_is_encoded_again_alone():
    # lr 1e4 throws every stacked fit off; the single encoder then restarts (and falls back to the flat image)
    config = EncoderConfig(mlp=MlpSettings(hidden_width=16, hidden_layers=3, bits=8), steps=400, lr=1e4, device="cpu")
    image = smooth_image(16, 24, 3, seed=5)
    [stacked] = encode_many([image], config)
    single = encode_pixels(image, config)
    assert stacked.fit_attempts == single.fit_attempts > 1
    assert stacked.data == single.data


def _hot_fit(images, monkeypatch, max_rollbacks=4):
    """The spiking fit of test_fit_guard (64x5 SIREN, lr 5e-3, 512-pixel batches), stacked."""
    import codec.encoding.fitting
    import codec.encoding.stacked
    from codec.encoding.common import image_tensors
    from codec.encoding.mlp import new_network
    from codec.encoding.fitting import Phase, mse_to_psnr
    from codec.progress import Progress
    from codec.encoding.stacked import fit_stacked

    monkeypatch.setattr(codec.encoding.stacked, "MAX_ROLLBACKS", max_rollbacks)
    tensors = [image_tensors(p, "cpu") for p in images]
    stack = StackedSiren([new_network(bitstream.SIREN, (64, 48, 3, 64, 5, 30.0), 0, "cpu", meta=False)[0] for _ in images])
    best, failed = fit_stacked(stack, torch.stack([c for c, _, _ in tensors]), torch.stack([t for _, t, _ in tensors]),
                               Phase("fit", 300, 5e-3, warmup_steps=15), progress=Progress(enabled=False),
                               batch_pixels=512, generator=torch.Generator().manual_seed(0))
    return [mse_to_psnr(float(m)) for m in best], stack


def _single_hot_fit(pixels):
    from codec.encoding.common import image_tensors
    from codec.encoding.mlp import new_network
    from codec.encoding.fitting import Phase, mse_to_psnr, optimise
    from codec.progress import Progress

    coords, target, _ = image_tensors(pixels, "cpu")
    model, _ = new_network(bitstream.SIREN, (64, 48, 3, 64, 5, 30.0), 0, "cpu", meta=False)
    result = optimise(model, coords, target, Phase("fit", 300, 5e-3, warmup_steps=15), batch_pixels=512,
                      generator=torch.Generator().manual_seed(0), progress=Progress(enabled=False))
    return mse_to_psnr(result.best_mse)


@pytest.mark.slow
def test_stacked_fits_whose_loss_blows_up_are_rolled_back_as_single_fits_are(monkeypatch):
    images = [smooth_image(48, 64, 3, seed=3), smooth_image(48, 64, 3, seed=6)]
    unguarded, _ = _hot_fit(images, monkeypatch, max_rollbacks=0)
    guarded, _ = _hot_fit(images, monkeypatch)
    assert max(unguarded) < 20  # both blow up at this rate (14.9 dB for seed 3)
    assert min(guarded) > 35
    # each image's rollbacks are its own: the stacked fits end near the single guarded fits (40.8 and
    # 40.8 dB stacked, 39.9 and 40.5 alone here; 40.7 stacked and 42.3 alone on the H100 machine's CPU with
    # torch 2.11, benchmarks/DECISIONS.md: a blow-up amplifies the products' rounding)
    assert guarded == pytest.approx([_single_hot_fit(p) for p in images], abs=2.5)


def test_stacked_guard_rolls_back_one_image_and_leaves_the_other_bit_for_bit():
    from codec.encoding.fitting import SNAPSHOT_EVERY, SPIKE_RATIO
    from codec.encoding.stacked import StackedGuard

    def run(spike_at):
        torch.manual_seed(0)
        stack = StackedSiren([Siren(channels=3, hidden_width=8, hidden_layers=2) for _ in range(2)])
        opt = torch.optim.Adam(stack.params, lr=1e-2)
        guard = StackedGuard(stack.params, opt, 2)
        history = []
        for step in range(1, 2 * SNAPSHOT_EVERY):
            opt.zero_grad()
            sum((p ** 2).sum() for p in stack.params).backward()
            guard.before_step()
            opt.step()
            loss = torch.tensor([1.0, 10 * SPIKE_RATIO if step == spike_at else 1.0])
            guard.after_step(step, loss)
            history.append([p.detach().clone() for p in stack.params])
        return history, guard

    calm, calm_guard = run(spike_at=None)
    spiked, guard = run(spike_at=SNAPSHOT_EVERY + 5)
    assert guard.rollbacks.tolist() == [0, 1] and guard.lr_scale.tolist() == [1.0, 0.5]
    assert calm_guard.rollbacks.tolist() == [0, 0]
    for a, b in zip(calm, spiked):  # image 0 is untouched by image 1's rollback
        assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    rolled = spiked[SNAPSHOT_EVERY + 4]  # image 1 right after its spike: back at its last snapshot
    assert all(torch.equal(x[1], y[1]) for x, y in zip(rolled, calm[SNAPSHOT_EVERY - 1]))
