"""The latent family's fused fitting step (codec.encoding.latent_step) against the plain definitions:
the Laplace's bin probabilities by its CDF, autograd through LatentGridInr, the context classes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bitstream.entropy import NEIGHBOUR_CLASSES, neighbour_classes
from codec.encoding import latent, latent_step
from codec.encoding.common import image_tensors
from codec.encoding.latent_rounding import context_classes
from codec.encoding.latent_step import (MAX_BITS, LatentRate, LatentState, batch_features, class_sums, image_features,
                                        mse_of, pixel_axes, rate_bits)


def cdf_bits(values: torch.Tensor, log_scales: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """-log2 of each value's bin of width 1 under a zero-mean Laplace, from its CDF (float64), capped."""
    b = torch.exp(log_scales.double()).clamp_min(1e-3)[classes]
    x = values.double()

    def cdf(v):
        return 0.5 + 0.5 * torch.sign(v) * (1 - torch.exp(-v.abs() / b))

    return (-torch.log2((cdf(x + 0.5) - cdf(x - 0.5)).clamp_min(1e-9))).clamp_max(MAX_BITS)


def test_rate_is_the_laplace_bin_probability_and_its_gradient_is_exact():
    torch.manual_seed(0)
    values = (torch.randn(400, dtype=torch.float64) * 2).requires_grad_()
    log_scales = (torch.randn(6, dtype=torch.float64) * 0.8).requires_grad_()
    classes = torch.randint(0, 6, (400,))
    total = LatentRate.apply(values, log_scales, classes)
    assert float(total.detach()) == pytest.approx(float(cdf_bits(values, log_scales, classes).sum()), rel=1e-10)
    assert torch.autograd.gradcheck(lambda v, s: LatentRate.apply(v, s, classes), (values, log_scales), eps=1e-6,
                                    atol=1e-5)


def test_rate_in_float32_matches_float64_where_the_cdf_difference_is_accurate():
    x = torch.linspace(-6, 6, 1201)
    for scale in (0.05, 0.4, 1.0, 3.0):
        s = torch.tensor([math.log(scale)])
        classes = torch.zeros(1, dtype=torch.long)
        ours = torch.stack([LatentRate.apply(v[None], s, classes) for v in x])
        ref = cdf_bits(x, s, torch.zeros_like(x, dtype=torch.long)).float()
        assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4), scale


def test_rate_caps_long_codes_and_gives_them_no_gradient():
    values = torch.tensor([0.0, 40.0, -40.0], requires_grad=True)
    log_scales = torch.tensor([math.log(0.5)], requires_grad=True)
    total = LatentRate.apply(values, log_scales, torch.zeros(3, dtype=torch.long))
    total.backward()
    assert float(total) == pytest.approx(float(cdf_bits(values[:1], log_scales, torch.zeros(1, dtype=torch.long))) + 2 * MAX_BITS)
    assert values.grad[1:].abs().max() == 0


def test_class_sums_agree_by_bincount_and_by_one_hot(monkeypatch):
    torch.manual_seed(1)
    classes = torch.randint(0, 24, (5000,))
    values = torch.randn(5000)
    by_count = class_sums(classes, values, 24, one_hot=False)
    assert torch.allclose(by_count, class_sums(classes, values, 24, one_hot=True), atol=1e-4)
    monkeypatch.setattr(latent_step, "ONE_HOT_CHUNK", 512)  # several chunks, added in order
    assert torch.allclose(by_count, class_sums(classes, values, 24, one_hot=True), atol=1e-4)


def _model(width=37, height=23, channels=3):
    torch.manual_seed(3)
    grid = latent.default_grid(width, height)
    model = latent.new_model(channels, grid)
    with torch.no_grad():
        for g in model.latents:
            g.normal_(0.0, 2.0)
        for layer in model.layers:
            layer.bias.normal_(0.0, 0.3)
    pixels = (np.random.default_rng(2).random((height, width, channels)) * 255).astype(np.uint8)
    coords, target, _ = image_tensors(pixels, torch.device("cpu"))
    return model, coords, target


def test_flat_state_classes_are_each_grids_context_classes_and_store_round_trips():
    model, _, _ = _model()
    state = LatentState(model, NEIGHBOUR_CLASSES)
    noisy = state.flat.detach() + torch.rand(state.flat.shape) - 0.5
    got = state.classes(noisy)
    want = torch.cat([context_classes(g, NEIGHBOUR_CLASSES).reshape(-1) + level * NEIGHBOUR_CLASSES
                      for level, g in enumerate(state.levels(noisy))])
    assert torch.equal(got, want)
    # the coder's rule (bitstream.entropy.neighbour_classes), zeros outside the grid
    grid = torch.tensor([[[0.0, 1.2, -2.0], [3.0, 0.4, 1.0]]])
    assert context_classes(grid, 8).tolist() == [[[0, 0, 2], [0, 7, 5]]]
    q = np.pad(np.round(noisy[:state.sizes[0]].numpy()).astype(np.int64).reshape(state.shapes[0]), ((0, 0), (1, 0), (1, 0)))
    coder = neighbour_classes(q[:, 1:, :-1], q[:, :-1, 1:], q[:, :-1, :-1], NEIGHBOUR_CLASSES)
    assert np.array_equal(got[:state.sizes[0]].numpy().reshape(state.shapes[0]), coder)
    before = [g.detach().clone() for g in model.latents]
    with torch.no_grad():
        state.flat.add_(1.0)
    state.store(model)
    assert all(torch.equal(g, b + 1.0) for g, b in zip(model.latents, before))


def test_fused_step_matches_autograd_through_the_model():
    model, coords, target = _model()
    state = LatentState(model, NEIGHBOUR_CLASSES)
    log_scales = (torch.randn(model.grid.levels, NEIGHBOUR_CLASSES) * 0.5).requires_grad_()
    noise = torch.rand(state.flat.shape) - 0.5
    index = torch.randint(0, coords.shape[0], (700,))
    weights = model.parameters_in_file_order()[model.grid.levels:]

    def fused(batch: bool):
        used = state.flat + noise
        grids = state.levels(used)
        if batch:
            features, want = batch_features(model, grids, pixel_axes(coords, model.grid.width), index), target[index].T
        else:
            features, want = image_features(model, grids, model.image_matrices()), target.T.contiguous()
        loss = mse_of(features, want, weights) + 0.01 * rate_bits(state, used, log_scales)
        return torch.autograd.grad(loss, [state.flat, log_scales, *weights])

    def plain(batch: bool):
        grids = [g.detach().clone().requires_grad_() for g in state.levels(state.flat.detach())]
        used = [g + n for g, n in zip(grids, state.levels(noise))]
        if batch:
            out, want = model.synthesis(model.pixel_features(coords, index, used)), target[index]
        else:
            out, want = model.synthesis(model.image_features(model.image_matrices(), used)), target
        bits = sum(cdf_bits(u.reshape(-1), log_scales[l], context_classes(u, NEIGHBOUR_CLASSES).reshape(-1)).sum()
                   for l, u in enumerate(used))
        loss = torch.mean((out - want) ** 2) + 0.01 * bits
        grads = torch.autograd.grad(loss, grids + [log_scales, *weights])
        return [torch.cat([g.reshape(-1) for g in grads[:len(grids)]])] + list(grads[len(grids):])

    for batch in (True, False):
        for a, b in zip(fused(batch), plain(batch)):
            assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-5)
