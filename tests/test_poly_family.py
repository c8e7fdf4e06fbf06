"""The Poly-INR family (architecture id 2): format, encoder, both decoders, derivatives, CLI."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

import bitstream
from benchmarks.robustness.fuzz_inr import crafted_file
from bitstream import LAPLACE, POLY, Header, InrFormatError
from codec import decode
from codec.config import EncoderConfig
from codec.decoding.decoder import build_model, decode_array
from codec.encoding import encode_pixels
from codec.families.poly.numpy import evaluate as poly
from codec.families.poly.model import PolyInr

from conftest import quick_config, smooth_image


@pytest.fixture(scope="module")
def poly_file():
    pixels = smooth_image(24, 36, 3)
    return pixels, encode_pixels(pixels, quick_config(arch="poly", lr=1e-2, steps=200))


def test_tensor_shapes_and_counts():
    shapes = bitstream.tensor_shapes(POLY, 8, 3, 3)
    assert shapes == [(8, 2), (8,), (8, 2), (8,), (8, 8), (8,), (8, 2), (8,), (8, 8), (8,), (3, 8), (3,)]
    assert bitstream.parameter_count(POLY, 8, 3, 3) == 24 + 2 * (24 + 72) + 27
    assert bitstream.multiply_adds(POLY, 8, 3, 3) == 16 + 2 * (16 + 64) + 24
    model = PolyInr(channels=3, hidden_width=8, hidden_layers=3)
    assert [tuple(p.shape) for p in model.parameters_in_file_order()] == shapes
    assert sum(p.numel() for p in model.parameters()) == bitstream.parameter_count(POLY, 8, 3, 3)


def test_encode_round_trip_names_the_family(poly_file):
    pixels, result = poly_file
    header = bitstream.read_header(result.data)
    assert header.arch == POLY and header.omega0 == 1.0 and header.to_dict()["arch"] == "poly"
    assert result.arch == "poly" and result.bpp == 8 * len(result.data) / (24 * 36)
    decoded = decode_array(result.data, device="cpu")
    diff = decoded.astype(np.float64) - pixels
    assert result.psnr == pytest.approx(10 * np.log10(255**2 / np.mean(diff**2)), abs=1e-9)
    assert result.psnr > 22  # a flat image of this picture is about 11 dB


def test_numpy_decoder_matches_torch_decoder(poly_file):
    data = poly_file[1].data
    for size in (None, (73, 50)):
        torch_px = decode_array(data, size=size, backend="torch", device="cpu")
        numpy_px = decode_array(data, size=size, backend="numpy")
        assert np.abs(torch_px.astype(int) - numpy_px).max() <= 1
        assert np.mean(torch_px == numpy_px) > 0.99


def test_torch_module_matches_numpy_evaluator_in_float64():
    data = crafted_file(np.random.default_rng(5), channels=3, hidden_width=10, hidden_layers=4, width=9, height=7,
                        kinds=(LAPLACE,), arch=POLY)
    header, symbols = bitstream.read_file(data)
    weights = bitstream.dequantize(header, symbols)
    xy = np.random.default_rng(1).uniform(-1, 1, size=(300, 2))
    with torch.no_grad():
        ref = build_model(header, weights, torch.device("cpu")).double()(torch.from_numpy(xy)).numpy()
    assert np.abs(poly(header, weights, xy).values - ref).max() < 1e-12 * max(1.0, np.abs(ref).max())


def test_derivatives_match_finite_differences():
    data = crafted_file(np.random.default_rng(6), channels=3, hidden_width=10, hidden_layers=4, width=9, height=7,
                        kinds=(LAPLACE,), arch=POLY)
    header, symbols = bitstream.read_file(data)
    weights = [w.astype(np.float64) for w in bitstream.dequantize(header, symbols)]
    xy = np.random.default_rng(2).uniform(-0.9, 0.9, size=(200, 2))
    ev = poly(header, weights, xy, order=2)
    for k in range(2):
        e = np.zeros(2)
        e[k] = 1
        h1, h2 = 1e-6, 1e-4
        fd1 = (poly(header, weights, xy + h1 * e).values - poly(header, weights, xy - h1 * e).values) / (2 * h1)
        fd2 = (poly(header, weights, xy + h2 * e).values - 2 * ev.values + poly(header, weights, xy - h2 * e).values) / h2**2
        # a piecewise-polynomial network: points near a LeakyReLU kink may differ; the rest agree tightly
        assert np.mean(np.abs(ev.jacobian[:, :, k] - fd1) < 1e-6 * np.abs(ev.jacobian).max()) > 0.97
        assert np.mean(np.abs(ev.hessian_diag[:, :, k] - fd2) < 1e-3 * np.abs(ev.hessian_diag).max()) > 0.95


def test_views_render_for_the_family(poly_file):
    for view in ("gradient", "laplacian"):
        img = decode(poly_file[1].data, size=(30, 20), render=view)
        assert img.size == (30, 20) and img.mode == "L"


def test_omega0_other_than_one_is_rejected():
    with pytest.raises(InrFormatError, match="'omega0' = 30.0 must be 1.0 for architecture 'poly'"):
        bitstream.header.pack_header(Header(width=4, height=4, channels=3, arch=POLY, hidden_width=4, hidden_layers=1,
                                            omega0=30.0, init_id=0, tensors=()))
    data = bytearray(crafted_file(np.random.default_rng(0), channels=3, hidden_width=4, hidden_layers=2, width=5,
                                  height=5, kinds=(LAPLACE,), arch=POLY))
    struct.pack_into("<f", data, 7 + 9, 30.0)  # the omega0 field (FORMAT.md §4.1), CRC fixed below
    from benchmarks.robustness.fuzz_inr import fix_crc

    with pytest.raises(InrFormatError, match="must be 1.0"):
        decode_array(fix_crc(bytes(data)))


def test_stacked_encoding_refuses_the_family():
    from codec.errors import OptionError
    from codec.encoding.stacked import encode_many

    with pytest.raises(OptionError, match="SIRENs only"):
        encode_many([smooth_image(8, 8, 3)], EncoderConfig(arch="poly", steps=5, device="cpu"))


def test_unknown_family_name_is_an_option_error():
    from codec.errors import OptionError

    with pytest.raises(OptionError, match="unknown architecture 'grid': choose one of auto, siren, poly, latent"):
        EncoderConfig(arch="grid").validated()


def test_cli_arch_flag_and_info(tmp_path, capsys):
    from PIL import Image

    from codec.cli import encode_main, info_main

    Image.fromarray(smooth_image(16, 24, 3)).save(tmp_path / "in.png")
    code = encode_main([str(tmp_path / "in.png"), str(tmp_path / "a.inr"), "--arch", "poly", "--steps", "40",
                        "--bpp", "8", "--device", "cpu", "--json", "-q"])
    assert code == 0 and json.loads(capsys.readouterr().out)["arch"] == "poly"
    assert info_main([str(tmp_path / "a.inr")]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == "poly"
    with pytest.raises(SystemExit) as exit_info:
        encode_main([str(tmp_path / "in.png"), str(tmp_path / "b.inr"), "--arch", "nope"])
    assert exit_info.value.code != 0 and "invalid choice: 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "b.inr").exists()
