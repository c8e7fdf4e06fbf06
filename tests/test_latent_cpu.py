"""The CPU's fused per-latent pass (codec.encoding.latent_cpu) against the torch step it replaces:
the same rate, rate gradients and Adam update, the same result on 1 and 2 threads, uniform noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bitstream.entropy import NEIGHBOUR_CLASSES
from codec.encoding import latent
from codec.encoding.latent_cpu import NOISE, ROUND, FusedLatents
from codec.encoding.latent_step import LatentState, rate_bits


def _state(width=57, height=39, seed=0):
    torch.manual_seed(seed)
    model = latent.new_model(3, latent.default_grid(width, height))
    with torch.no_grad():
        for g in model.latents:
            g.normal_(0.0, 1.5)
    return model, LatentState(model, NEIGHBOUR_CLASSES)


@pytest.mark.parametrize("mode", [NOISE, ROUND])
def test_fused_pass_is_the_torch_rate_and_adam_step(mode):
    model, state = _state()
    reference = state.flat.detach().clone().requires_grad_(True)
    fused = FusedLatents(state, seed=3)
    used = fused.begin(mode).copy()
    if mode == ROUND:
        assert np.array_equal(used, np.round(reference.detach().numpy()))
    log_scales = torch.randn(model.grid.levels * NEIGHBOUR_CLASSES) * 0.5
    distortion = (np.random.default_rng(1).standard_normal(used.shape) * 0.01).astype(np.float32)
    weight = 0.3
    # torch: loss = <distortion, used> + weight x bits(used), used = latents + a constant (straight through)
    values = reference + torch.from_numpy(used - reference.detach().numpy())
    scales = log_scales.clone().requires_grad_(True)
    bits = rate_bits(state, values, scales.reshape(model.grid.levels, -1))
    ((torch.from_numpy(distortion) * values).sum() + weight * bits).backward()
    torch.optim.Adam([reference], lr=0.05).step()
    fused_bits, per_class = fused.step(distortion, log_scales.numpy(), weight, 0.05)
    assert fused_bits == pytest.approx(float(bits.detach()), rel=1e-6)
    assert np.allclose(per_class * weight, scales.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert np.abs(fused.flat - reference.detach().numpy()).max() < 1e-6
    assert np.array_equal(fused.flat, state.flat.detach().numpy())  # in place, in the state's tensor


def test_fused_pass_does_not_depend_on_the_thread_count():
    outcomes = []
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)  # the fused pass follows torch's thread count
        try:
            model, state = _state(width=300, height=200, seed=4)
            fused = FusedLatents(state, seed=9)
            fused.begin(NOISE)
            grad = np.full(state.flat.shape, 1e-3, np.float32)
            results = [fused.step(grad, np.zeros(model.grid.levels * NEIGHBOUR_CLASSES, np.float32), 0.2, 0.05)
                       for _ in range(3)]
            outcomes.append((fused.flat.copy(), fused.used.copy(), [r[0] for r in results], results[-1][1]))
        finally:
            torch.set_num_threads(before)
    (a, ua, ba, ca), (b, ub, bb, cb) = outcomes
    assert np.array_equal(a, b) and np.array_equal(ua, ub) and ba == bb and np.array_equal(ca, cb)


def test_noise_is_uniform_and_fixed_by_seed_and_step():
    _, state = _state(width=400, height=300)
    flat = state.flat.detach().numpy().copy()
    first = FusedLatents(state, seed=5).begin(NOISE) - flat
    again = FusedLatents(state, seed=5).begin(NOISE) - flat
    other = FusedLatents(state, seed=6).begin(NOISE) - flat
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.min() >= -0.5 - 1e-6 and first.max() < 0.5 + 1e-6
    counts = np.histogram(first, bins=10, range=(-0.5, 0.5))[0]
    assert counts.min() > 0.9 * first.size / 10 and abs(float(first.mean())) < 0.01


def _distortion_case(width, height, sampling, hidden_layers, level_channels, batch, seed=0):
    from codec.config import LatentSettings
    from codec.encoding.common import image_tensors

    settings = LatentSettings(synth_layers=hidden_layers, level_channels=level_channels)
    torch.manual_seed(seed)
    model = latent.new_model(3, latent.default_grid(width, height, sampling, settings), settings)
    with torch.no_grad():
        for g in model.latents:
            g.normal_(0.0, 1.5)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    coords, target, _ = image_tensors(pixels, torch.device("cpu"))
    index = np.sort(np.random.default_rng(seed + 1).integers(0, width * height, batch))  # with repeats
    return model, LatentState(model, NEIGHBOUR_CLASSES), coords, target, index


@pytest.mark.parametrize("sampling", [0, 1])
@pytest.mark.parametrize("hidden_layers,level_channels", [(2, 1), (1, 2), (3, 1)])
def test_fused_distortion_is_the_torch_samples_mlp_and_backward(sampling, hidden_layers, level_channels):
    from codec.encoding.latent_cpu import PIXEL_BLOCK, FusedDistortion
    from codec.encoding.latent_step import batch_features, mse_of, pixel_axes

    width, height = 77, 45
    model, state, coords, target, index = _distortion_case(width, height, sampling, hidden_layers, level_channels,
                                                           batch=3 * PIXEL_BLOCK + 17)
    weights = model.parameters_in_file_order()[model.grid.levels:]
    values = state.flat.detach().clone().requires_grad_(True)
    idx = torch.from_numpy(index)
    features = batch_features(model, state.levels(values), pixel_axes(coords, width), idx)
    mse = mse_of(features, torch.index_select(target, 0, idx).T, weights)
    mse.backward()
    fused_mse, grads, latent_grad = FusedDistortion(state, width, height, sampling, target).step(
        values.detach().numpy(), index, weights)
    assert fused_mse == pytest.approx(float(mse.detach()), rel=1e-5)
    for w, g in zip(weights, grads):
        assert g.shape == w.shape
        assert torch.allclose(g, w.grad, rtol=1e-4, atol=1e-7)
    assert np.allclose(latent_grad, values.grad.numpy(), rtol=1e-4, atol=1e-8)
    touched = np.abs(values.grad.numpy()) > 0
    assert touched.any() and not touched.all()  # a batch reaches some latents of the finest grid, not all


def test_fused_distortion_does_not_depend_on_the_thread_count():
    from codec.encoding.latent_cpu import FusedDistortion

    model, state, coords, target, index = _distortion_case(160, 96, 0, 2, 1, batch=5000)
    weights = model.parameters_in_file_order()[model.grid.levels:]
    before = torch.get_num_threads()
    outcomes = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            mse, grads, latent_grad = FusedDistortion(state, 160, 96, 0, target).step(
                state.flat.detach().numpy(), index, weights)
            outcomes.append((mse, [g.numpy().copy() for g in grads], latent_grad.copy()))
    finally:
        torch.set_num_threads(before)
    (m1, g1, l1), (m2, g2, l2) = outcomes
    assert m1 == m2
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))
    assert np.array_equal(l1, l2)
