"""Gradient and Laplacian views: exact forward-mode derivatives of the decoded network, checked
against finite differences, and their 8-bit normalization."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import bitstream
import codec
from benchmarks.robustness.fuzz_inr import crafted_file
from bitstream import ZERO
from codec.cli import decode_main
from codec.coords import grid_array
from codec.families.siren.numpy import evaluate as siren
from codec.decoding.numpy_render import derivative_field, normalize_view


@pytest.fixture(scope="module")
def data() -> bytes:
    """A file with random (Laplace-distributed) weights: a busy image with large derivatives."""
    from bitstream import LAPLACE

    return crafted_file(np.random.default_rng(3), channels=3, hidden_width=12, hidden_layers=2, width=20, height=12,
                        kinds=(LAPLACE,))


@pytest.fixture(scope="module")
def net(data):
    header, symbols = bitstream.read_file(data)
    return header, bitstream.dequantize(header, symbols)


def _values(header, weights, xy):
    return siren(header, weights, xy).values


def test_jacobian_and_second_derivatives_match_finite_differences(net):
    header, weights = net
    xy = np.random.default_rng(0).uniform(-0.9, 0.9, size=(200, 2))  # float64 throughout
    ev = siren(header, weights, xy, order=2)
    scale = np.abs(ev.jacobian).max()
    for k in range(2):
        e = np.zeros(2)
        e[k] = 1
        h1, h2 = 1e-6, 1e-5  # truncation error of the second difference ~ h2^2
        fd1 = (_values(header, weights, xy + h1 * e) - _values(header, weights, xy - h1 * e)) / (2 * h1)
        fd2 = (_values(header, weights, xy + h2 * e) - 2 * ev.values + _values(header, weights, xy - h2 * e)) / h2**2
        assert np.abs(ev.jacobian[:, :, k] - fd1).max() < 1e-6 * scale
        assert np.abs(ev.hessian_diag[:, :, k] - fd2).max() < 1e-4 * np.abs(ev.hessian_diag).max()
    assert np.array_equal(siren(header, weights, xy).values, ev.values)


def test_fields_are_in_levels_per_stored_pixel(net):
    """gradient = RMS over channels of |d(127.5 v)/d pixel|; laplacian = channel mean of the pixel-unit Laplacian."""
    header, weights = net
    h, w = 9, 14
    grad = derivative_field(header, weights, h, w, "gradient", dtype=np.float64)
    lap = derivative_field(header, weights, h, w, "laplacian", dtype=np.float64)
    xy = grid_array(h, w).astype(np.float64)
    step = 1e-5
    per_pixel = np.array([2.0 / header.width, 2.0 / header.height])
    d1, d2 = [], []
    for k in range(2):
        e = np.zeros(2)
        e[k] = step
        plus, minus, mid = (127.5 * _values(header, weights, p) for p in (xy + e, xy - e, xy))
        d1.append((plus - minus) / (2 * step) * per_pixel[k])
        d2.append((plus - 2 * mid + minus) / step**2 * per_pixel[k] ** 2)
    expected_grad = np.sqrt(np.mean(d1[0] ** 2 + d1[1] ** 2, axis=1)).reshape(h, w)
    expected_lap = np.mean(d2[0] + d2[1], axis=1).reshape(h, w)
    assert np.allclose(grad, expected_grad, rtol=1e-4, atol=1e-6 * grad.max())
    assert np.allclose(lap, expected_lap, rtol=1e-2, atol=1e-2 * np.abs(lap).max())
    # float32 (what the CLI renders) agrees with float64 closely
    grad32 = derivative_field(header, weights, h, w, "gradient")
    assert np.abs(grad32 - grad).max() < 1e-3 * grad.max()


def test_normalization():
    field = np.linspace(0, 10, 1000).reshape(20, 50)
    g = normalize_view(field, "gradient")
    ref = np.percentile(field, 99.5)
    assert g[0, 0] == 0 and g.max() == 255 and abs(int(g.flat[500]) - round(255 * field.flat[500] / ref)) <= 1
    lap = normalize_view(field - 5, "laplacian")
    assert lap.min() == 0 and lap.max() == 255 and abs(int(lap.flat[500]) - 128) <= 1
    flat = normalize_view(np.zeros((3, 4)), "laplacian")
    assert (flat == 128).all() and (normalize_view(np.zeros((3, 4)), "gradient") == 0).all()
    nan = normalize_view(np.array([[np.nan, 1.0]]), "gradient")
    assert nan[0, 0] == 0


def test_flat_network_has_zero_gradient_and_laplacian():
    data = crafted_file(np.random.default_rng(0), channels=3, hidden_width=8, hidden_layers=2, width=10, height=6,
                        kinds=(ZERO,))
    assert (np.asarray(codec.decode(data, render="gradient")) == 0).all()
    assert (np.asarray(codec.decode(data, render="laplacian")) == 128).all()


@pytest.mark.parametrize("view", ["gradient", "laplacian"])
def test_cli_render_views_at_any_size(data, tmp_path, view):
    path = tmp_path / "a.inr"
    path.write_bytes(data)
    out = tmp_path / f"{view}.png"
    assert decode_main([str(path), "-o", str(out), "--render", view, "--size", "40x24"]) == 0
    img = Image.open(out)
    assert (img.mode, img.size) == ("L", (40, 24))
    assert np.array_equal(np.asarray(img), np.asarray(codec.decode(data, size=(40, 24), render=view)))
    assert np.ptp(np.asarray(img)) > 50  # a real image, not a flat one
