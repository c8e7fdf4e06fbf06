"""The latent-grid family (architecture id 3, format versions 2 to 4): format, encoder, both decoders, CLI."""
from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np
import pytest
import torch

import bitstream
from benchmarks.robustness.fuzz_inr import crafted_file, fix_crc
from bitstream import BICUBIC, BILINEAR, LAPLACE, LATENT, SIREN, Header, InrFormatError, LatentGrid, TensorModel, TensorRecord, choose_model
from bitstream.header import pack_header
from codec.config import EncoderConfig
from codec.decoding.decoder import DecodeLimits, build_model, decode_array
from codec.encoding import encode_pixels
from codec.errors import OptionError
from codec.families.latent.model import LatentGridInr, sample_grid
from codec.families.latent.numpy import evaluate as latent, sample

from conftest import smooth_image


@pytest.fixture(scope="module")
def latent_file():
    pixels = smooth_image(40, 56, 3)
    return pixels, encode_pixels(pixels, EncoderConfig(arch="latent", bpp=6.0, steps=150, device="cpu"))


@pytest.fixture(scope="module")
def bicubic_file():
    pixels = smooth_image(40, 56, 3)
    return pixels, encode_pixels(pixels, EncoderConfig(arch="latent", bpp=6.0, steps=150, device="cpu",
                                                       latent_sampling="bicubic"))


@pytest.fixture(params=["bilinear", "bicubic"])
def any_latent_file(request, latent_file, bicubic_file):
    """(pixels, result, sampling) of the default (bilinear) and the bicubic encode."""
    return (*(latent_file if request.param == "bilinear" else bicubic_file), request.param)


def test_grid_shapes_and_counts():
    grid = LatentGrid(width=13, height=9, levels=3, channels=2)
    assert grid.level_shapes() == [(2, 9, 13), (2, 5, 7), (2, 3, 4)]
    assert grid.values() == 2 * (117 + 35 + 12)
    shapes = bitstream.tensor_shapes(LATENT, 6, 2, 3, grid)
    assert shapes == grid.level_shapes() + [(6, 6), (6,), (6, 6), (6,), (3, 6), (3,)]
    assert bitstream.parameter_count(LATENT, 6, 2, 3, grid) == grid.values() + 42 + 42 + 21
    assert bitstream.multiply_adds(LATENT, 6, 2, 3, grid) == 36 + 36 + 18 + 4 * 3 * 2  # + bilinear lookups
    bicubic = LatentGrid(width=13, height=9, levels=3, channels=2, sampling=BICUBIC)
    assert bicubic.level_shapes() == grid.level_shapes()
    assert bitstream.multiply_adds(LATENT, 6, 2, 3, bicubic) == 36 + 36 + 18 + 16 * 3 * 2  # 4 x 4 taps
    model = LatentGridInr(channels=3, hidden_width=6, hidden_layers=2, grid=grid)
    assert [tuple(p.shape) for p in model.parameters_in_file_order()] == shapes
    assert sum(p.numel() for p in model.parameters()) == bitstream.parameter_count(LATENT, 6, 2, 3, grid)


@pytest.mark.slow
def test_encode_round_trip_names_the_family_and_its_sampling(any_latent_file):
    pixels, result, sampling = any_latent_file
    header = bitstream.read_header(result.data)
    kinds = {rec.model.kind for rec in header.tensors}
    # FORMAT.md §9: the lowest version that holds the file: the neighbour kinds (6, 7) need version 5, bicubic
    # grids version 4, ROW_PREDICT (5) version 3, the latent family version 2 (other families stay version 1)
    expected = 5 if kinds & {6, 7} else 4 if header.latent_sampling == BICUBIC else 3 if 5 in kinds else 2
    assert result.data[4] == expected
    info = header.to_dict()
    assert info["latent_sampling"] == sampling
    assert header.arch == LATENT and info["arch"] == "latent" and header.omega0 == 1.0
    assert (info["latent_levels"], info["latent_channels"]) == (header.latent_levels, header.latent_channels) == (6, 1)
    assert info["latent_values"] == LatentGrid(56, 40, 6, 1).values()
    assert result.arch == "latent" and result.bytes == len(result.data) and result.bpp <= 6.0
    decoded = decode_array(result.data, device="cpu")
    diff = decoded.astype(np.float64) - pixels
    assert result.psnr == pytest.approx(10 * np.log10(255**2 / np.mean(diff**2)), abs=1e-9)
    assert result.psnr > 25  # a flat image of this picture is about 11 dB


@pytest.mark.slow
def test_same_settings_give_the_same_bytes(latent_file):
    pixels, result = latent_file
    again = encode_pixels(pixels, EncoderConfig(arch="latent", bpp=6.0, steps=150, device="cpu"))
    assert again.data == result.data


@pytest.mark.slow
def test_pixel_batches_give_the_same_bytes_too():
    """Fits on random pixel batches (as on a CPU at full size) repeat as well: the finest grid's gather
    differentiates by index_add, not by an atomic scatter."""
    pixels = smooth_image(40, 56, 3, seed=2)
    cfg = EncoderConfig(arch="latent", bpp=6.0, steps=40, batch_pixels=700, device="cpu")
    assert encode_pixels(pixels, cfg).data == encode_pixels(pixels, cfg).data


@pytest.mark.slow
def test_rate_control_stays_at_or_below_the_target():
    pixels = smooth_image(64, 96, 3, seed=3)
    # a 96 x 64 picture: header and MLP alone are ~1.17 bpp, and in 120 steps it takes no more than ~2 bpp
    # whatever the target (3.0 -> 1.93 bpp, 4.0 -> 1.95 bpp at 29.3 dB: the latents saturate)
    for bpp in (1.5, 3.0):
        result = encode_pixels(pixels, EncoderConfig(arch="latent", bpp=bpp, steps=120, device="cpu"))
        assert result.bpp <= bpp
        assert result.bpp > 0.5 * bpp  # close to it: lambda is steered to the target while fitting


def test_numpy_decoder_matches_torch_decoder(any_latent_file):
    data = any_latent_file[1].data
    for size in (None, (73, 50), (200, 143)):
        torch_px = decode_array(data, size=size, backend="torch", device="cpu")
        numpy_px = decode_array(data, size=size, backend="numpy")
        assert np.abs(torch_px.astype(int) - numpy_px).max() <= 1
        assert np.mean(torch_px == numpy_px) > 0.99


@pytest.mark.parametrize("sampling", [BILINEAR, BICUBIC])
def test_numpy_sampling_is_torch_grid_sample(sampling):
    rng = np.random.default_rng(0)
    for shape in ((2, 5, 7), (1, 1, 4), (1, 3, 1)):
        grid = rng.normal(size=shape)
        coords = np.concatenate([rng.uniform(-1.3, 1.3, size=(500, 2)), [[-1, -1], [1, 1], [0.999, -0.999]]])
        with torch.no_grad():
            ref = sample_grid(torch.from_numpy(grid), torch.from_numpy(coords), sampling).numpy()
        assert np.abs(sample(grid, coords, sampling) - ref).max() < 1e-12
    # a grid samples its own cell centres exactly (the codec's coordinate convention)
    grid = rng.normal(size=(2, 5, 7))
    xs, ys = (2 * np.arange(7) + 1) / 7 - 1, (2 * np.arange(5) + 1) / 5 - 1
    centres = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    assert np.allclose(sample(grid, centres, sampling).T.reshape(2, 5, 7), grid)


def test_bicubic_differs_from_bilinear_between_centres():
    """Bicubic weights reach two cells away and go negative (Keys, A = -0.75): a spike spreads further."""
    grid = np.zeros((1, 1, 9))
    grid[0, 0, 4] = 1.0
    x = np.array([[(2 * 2.5 + 1) / 9 - 1, 0.0]])  # halfway between cells 2 and 3: two cells from the spike
    assert sample(grid, x, BILINEAR)[0, 0] == 0.0
    assert sample(grid, x, BICUBIC)[0, 0] == pytest.approx(-0.09375)  # far(1.5) = -0.75 * 0.125


@pytest.mark.parametrize("sampling", [BILINEAR, BICUBIC])
def test_whole_image_and_pixel_batch_features_are_grid_sample_at_the_pixel_centres(sampling):
    """The fit's whole-image path (separable interpolation matrices) and its pixel-batch path (the finest grid
    read directly, repeated pixels included) give grid_sample's values and gradients."""
    from codec.coords import grid as pixel_grid

    torch.manual_seed(0)
    for width, height, levels in [(37, 23, 4), (5, 3, 2), (64, 9, 3)]:
        grid = LatentGrid(width, height, levels, 2, sampling)
        model = LatentGridInr(channels=3, hidden_width=8, hidden_layers=1, grid=grid)
        grids = [torch.randn(g.shape, requires_grad=True) for g in model.latents]
        coords = pixel_grid(height, width)
        weights = torch.randn(height * width, levels * 2)
        ref = model.features(coords, grids)
        ref_grads = torch.autograd.grad((ref * weights).sum(), grids)
        fast = model.image_features(model.image_matrices(), grids)
        fast_grads = torch.autograd.grad((fast * weights).sum(), grids)
        assert fast.shape == ref.shape and torch.allclose(fast, ref, atol=1e-5)
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(fast_grads, ref_grads))
        index = torch.randint(0, height * width, (3 * height * width // 2,))
        ref = model.features(coords[index], grids)
        ref_grads = torch.autograd.grad((ref * weights[index]).sum(), grids)
        batch = model.pixel_features(coords, index, grids)
        batch_grads = torch.autograd.grad((batch * weights[index]).sum(), grids)
        assert batch.shape == ref.shape and torch.allclose(batch, ref, atol=1e-5)
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(batch_grads, ref_grads))


@pytest.mark.parametrize("sampling", [BILINEAR, BICUBIC])
def test_torch_module_matches_numpy_evaluator_in_float64(sampling):
    data = crafted_file(np.random.default_rng(5), channels=3, hidden_width=10, hidden_layers=2, width=9, height=7,
                        kinds=(LAPLACE,), arch=LATENT, latent_sampling=sampling)
    header, symbols = bitstream.read_file(data)
    weights = bitstream.dequantize(header, symbols)
    xy = np.random.default_rng(1).uniform(-1, 1, size=(300, 2))
    with torch.no_grad():
        ref = build_model(header, weights, torch.device("cpu")).double()(torch.from_numpy(xy)).numpy()
    assert np.abs(latent(header, weights, xy).values - ref).max() < 1e-12 * max(1.0, np.abs(ref).max())


def _latent_header(**overrides) -> Header:
    grid = LatentGrid(5, 4, 2, 1)
    n = len(bitstream.tensor_shapes(LATENT, 4, 1, 3, grid))
    values = dict(width=5, height=4, channels=3, arch=LATENT, hidden_width=4, hidden_layers=1, omega0=1.0, init_id=0,
                  tensors=tuple(TensorRecord(1.0, TensorModel(0)) for _ in range(n)), latent_levels=2, latent_channels=1)
    values.update(overrides)
    return Header(**values)


def test_grid_fields_are_checked_on_write_and_read():
    head = pack_header(_latent_header())
    assert head[14:16] == bytes([2, 1])  # latent_levels, latent_channels right after the fixed fields (§4.1)
    with pytest.raises(InrFormatError, match="'latent_levels' = 0 is out of range 1..12"):
        pack_header(_latent_header(latent_levels=0))
    with pytest.raises(InrFormatError, match="'latent_channels' = 9 is out of range 1..8"):
        pack_header(_latent_header(latent_channels=9))
    with pytest.raises(InrFormatError, match="'siren' has no latent grids"):
        pack_header(Header(width=5, height=4, channels=3, arch=SIREN, hidden_width=4, hidden_layers=1, omega0=30.0,
                           init_id=0, tensors=(), latent_levels=2))
    data = bytearray(crafted_file(np.random.default_rng(0), channels=3, hidden_width=4, hidden_layers=1, width=5,
                                  height=4, kinds=(LAPLACE,), arch=LATENT, latent_levels=2, latent_channels=1))
    for offset, value, words in ((14, 13, "'latent_levels' = 13"), (15, 0, "'latent_channels' = 0")):
        bad = bytearray(data)
        bad[7 + offset] = value
        with pytest.raises(InrFormatError, match=words):
            decode_array(fix_crc(bytes(bad)))


def test_sampling_field_is_version_4_only():
    """FORMAT.md §4.1 / §9: bilinear grids keep versions 2-3 and no sampling byte; bicubic ones add it after
    latent_channels and need version 4; the field is range-checked on write and read."""
    from bitstream.header import file_version, unpack_header

    bilinear_head = pack_header(_latent_header())
    bicubic_header = _latent_header(latent_sampling=BICUBIC)
    bicubic_head = pack_header(bicubic_header)
    assert file_version(_latent_header()) == 2 and file_version(bicubic_header) == 4
    assert bicubic_head[14:17] == bytes([2, 1, 1]) and bicubic_head[17:] == bilinear_head[16:]
    assert unpack_header(bicubic_head, version=4) == bicubic_header
    assert unpack_header(bilinear_head, version=2).latent_sampling == BILINEAR
    zero = bilinear_head[:16] + b"\x00" + bilinear_head[16:]  # version 4 may say bilinear too
    assert unpack_header(zero, version=4) == _latent_header()
    with pytest.raises(InrFormatError, match="'latent_sampling' = 2 is out of range 0..1"):
        pack_header(_latent_header(latent_sampling=2))
    with pytest.raises(InrFormatError, match="'latent_sampling' = 2 is out of range 0..1"):
        unpack_header(bilinear_head[:16] + b"\x02" + bilinear_head[16:], version=4)
    with pytest.raises(InrFormatError, match="'siren' has no latent grids"):
        pack_header(Header(width=5, height=4, channels=3, arch=SIREN, hidden_width=4, hidden_layers=1, omega0=30.0,
                           init_id=0, tensors=(), latent_sampling=BICUBIC))
    data = crafted_file(np.random.default_rng(0), channels=3, hidden_width=4, hidden_layers=1, width=5, height=4,
                        kinds=(LAPLACE,), arch=LATENT, latent_sampling=BICUBIC)
    assert data[4] == 4 and bitstream.read_header(data).grid().sampling == BICUBIC
    as_v3 = bytearray(data)
    as_v3[4] = 3  # read without the sampling byte, the records are misaligned: refused, not misread
    with pytest.raises(InrFormatError):
        decode_array(fix_crc(bytes(as_v3)))


def test_version_and_family_must_agree():
    data = bytearray(crafted_file(np.random.default_rng(0), channels=3, hidden_width=4, hidden_layers=1, width=5,
                                  height=4, kinds=(LAPLACE,), arch=LATENT))
    data[4] = 1
    with pytest.raises(InrFormatError, match="architecture 'latent' needs format version 2, the file says version 1"):
        bitstream.read_header(fix_crc(bytes(data)))
    siren = crafted_file(np.random.default_rng(0), channels=3, hidden_width=4, hidden_layers=1, width=5, height=4,
                         kinds=(LAPLACE,))
    assert siren[4] == 1  # files of the other families keep version 1, readable by older decoders


def test_huge_grids_are_refused_before_allocation():
    grid = LatentGrid(65535, 65535, 12, 8)
    n = len(bitstream.tensor_shapes(LATENT, 4, 1, 3, grid))
    header = _latent_header(width=65535, height=65535, latent_levels=12, latent_channels=8,
                            tensors=tuple(TensorRecord(1.0, TensorModel(0)) for _ in range(n)))
    head = pack_header(header)  # framed by hand: write_file would allocate the (all-zero) tensors
    body = bitstream.MAGIC + struct.pack("<BH", 2, len(head)) + head + struct.pack("<I", 0)
    data = body + struct.pack("<I", zlib.crc32(body))
    with pytest.raises(InrFormatError, match="more than the decoder's limit"):
        decode_array(data, res=16)
    with pytest.raises(InrFormatError, match="more than the decoder's limit"):
        bitstream.read_header(data, max_parameters=grid.values() - 1)


def test_derivative_views_are_refused(latent_file):
    with pytest.raises(OptionError, match="needs a smooth network"):
        decode_array(latent_file[1].data, render="gradient")


def test_default_grids_of_any_size_up_to_50_megapixels_are_accepted_by_default_decoders():
    from codec.encoding.latent import decoders_accept, default_grid

    for width, height in ((768, 512), (2268, 1512), (4032, 3024), (8192, 6100)):
        assert decoders_accept(default_grid(width, height), 3), (width, height)


def test_grids_the_default_decoder_would_refuse_are_refused_up_front():
    from codec.config import LatentSettings

    pixels = np.zeros((1800, 2400, 3), dtype=np.uint8)  # 4.3 M pixels: 23 M latents at 4 channels a level
    with pytest.raises(OptionError, match="more than decoders accept by default"):
        encode_pixels(pixels, EncoderConfig(arch="latent", bpp=0.3, steps=1, device="cpu",
                                            latent=LatentSettings(level_channels=4)))


@pytest.mark.slow
def test_cli_arch_latent_and_info(tmp_path, capsys):
    from PIL import Image

    from codec.cli import decode_main, encode_main, info_main

    Image.fromarray(smooth_image(32, 48, 3)).save(tmp_path / "in.png")
    code = encode_main([str(tmp_path / "in.png"), str(tmp_path / "a.inr"), "--arch", "latent", "--steps", "60",
                        "--bpp", "8", "--device", "cpu", "--json", "-q"])
    assert code == 0 and json.loads(capsys.readouterr().out)["arch"] == "latent"
    assert info_main([str(tmp_path / "a.inr")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == "latent" and info["latent_levels"] == 6 and info["hidden_width"] == 24
    assert decode_main([str(tmp_path / "a.inr"), "-o", str(tmp_path / "big.png"), "--res", "300"]) == 0
    assert Image.open(tmp_path / "big.png").size == (300, 200)
    for sampling, version in (("bilinear", (2, 3, 5)), ("bicubic", (4, 5))):
        out = tmp_path / f"{sampling}.inr"
        assert encode_main([str(tmp_path / "in.png"), str(out), "--arch", "latent", "--latent-sampling", sampling,
                            "--steps", "20", "--bpp", "8", "-q"]) == 0
        data = out.read_bytes()
        assert data[4] in version and bitstream.read_header(data).to_dict()["latent_sampling"] == sampling
    with pytest.raises(SystemExit) as usage:  # argparse: a usage error, exit 2
        encode_main([str(tmp_path / "in.png"), str(tmp_path / "c.inr"), "--latent-sampling", "nearest", "-q"])
    assert usage.value.code == 2 and "invalid choice: 'nearest'" in capsys.readouterr().err
    code = encode_main([str(tmp_path / "in.png"), str(tmp_path / "b.inr"), "--arch", "latent", "--sparsity", "0.2",
                        "--steps", "5", "-q"])
    assert code == 2 and "sizes its own network" in capsys.readouterr().err
    assert not (tmp_path / "b.inr").exists()


def test_row_renderer_matches_the_pointwise_evaluator(any_latent_file):
    from codec.coords import grid_array
    from codec.families.latent.numpy import render_rows as latent_rows
    from codec.decoding.numpy_render import to_uint8

    header, symbols = bitstream.read_file(any_latent_file[1].data)
    weights = bitstream.dequantize(header, symbols)
    for width, height in ((56, 40), (131, 97), (23, 9)):
        pointwise = latent(header, weights, grid_array(height, width)).values
        rows = np.concatenate([latent_rows(header, weights, height, width, start, min(height, start + 7))
                               for start in range(0, height, 7)])  # in chunks, as the renderer calls it
        assert np.abs(rows - pointwise).max() < 1e-5
        same = to_uint8(rows) == to_uint8(pointwise)
        assert same.mean() > 0.999


def _grid_symbols(seed: int = 0) -> np.ndarray:
    """Latent-like symbols: sparse, with structure that runs down the rows (so the row context pays)."""
    rng = np.random.default_rng(seed)
    active = rng.random((2, 1, 40)) < 0.3  # columns that are busy in (almost) every row
    q = np.where(active & (rng.random((2, 30, 40)) < 0.95), rng.laplace(0, 3, (2, 30, 40)), 0)
    q = np.where(active, np.sign(q) * np.maximum(np.abs(q), 1), 0)  # no zeros in a busy column
    return np.clip(np.round(q), -20, 20).astype(np.int32)


def test_row_context_model_round_trips_and_pays():
    from bitstream.entropy import MODEL_NAMES, PLAIN_KINDS, ROW_CONTEXT, ROW_KINDS, decode_tensors, encode_tensors, measure_bits

    q = _grid_symbols()
    model = choose_model(q, kinds=PLAIN_KINDS + ROW_KINDS)
    assert model.kind == ROW_CONTEXT and len(model.classes) == 6
    plain = choose_model(q.reshape(-1))
    assert measure_bits(q, model) < 0.9 * measure_bits(q, plain)
    payload = encode_tensors([q], [model])
    assert np.array_equal(decode_tensors(payload, [model], [q.shape])[0], q)
    assert {MODEL_NAMES[sub.kind] for sub in model.classes} <= set(MODEL_NAMES.values()) - {"row-context"}


def test_row_context_classes_use_only_the_row_above():
    from bitstream.entropy import context_classes

    above = np.array([0, 3, 0, 0, 1], dtype=np.int64)
    assert context_classes(above, 6).tolist() == [3, 5, 3, 1, 2]  # |a[c-1]| + 2|a[c]| + |a[c+1]|, capped at 5
    assert context_classes(np.zeros(4, dtype=np.int64), 6).tolist() == [0, 0, 0, 0]


def test_row_context_records_are_checked():
    from bitstream.entropy import LAPLACE as LAP
    from bitstream.entropy import PLAIN_KINDS, ROW_CONTEXT, ROW_KINDS

    q = _grid_symbols()
    grid = LatentGrid(40, 30, 1, 2)
    shapes = bitstream.tensor_shapes(LATENT, 4, 1, 3, grid)
    symbols = [q] + [np.zeros(s, dtype=np.int32) for s in shapes[1:]]
    records = [TensorRecord(1.0, choose_model(q, kinds=PLAIN_KINDS + ROW_KINDS))] + [TensorRecord(1.0, TensorModel(0)) for _ in shapes[1:]]

    def header(recs):
        return _latent_header(width=40, height=30, latent_levels=1, latent_channels=2, tensors=tuple(recs))

    data = bitstream.write_file(header(records), symbols)
    back = bitstream.read_file(data)[1]
    assert np.array_equal(back[0], q)
    info = bitstream.read_header(data).to_dict()["tensors"][0]
    assert info["model"] == "row-context" and len(info["classes"]) == 6
    context = TensorModel(ROW_CONTEXT, classes=(TensorModel(LAP, 3, scale=1.0),) * 2)
    with pytest.raises(InrFormatError, match="only latent grids"):
        pack_header(header(records[:1] + [TensorRecord(1.0, context)] + records[2:]))
    with pytest.raises(InrFormatError, match="'tensor 0 classes' = 1 is out of range 2..16"):
        pack_header(header([TensorRecord(1.0, TensorModel(ROW_CONTEXT, classes=context.classes[:1]))] + records[1:]))
    with pytest.raises(InrFormatError, match="class 1 model' = 4 is not a plain model"):
        pack_header(header([TensorRecord(1.0, TensorModel(ROW_CONTEXT, classes=(context.classes[0], context)))]
                           + records[1:]))


@pytest.mark.slow
def test_decoding_is_the_same_on_another_thread_count_and_in_numpy(latent_file, tmp_path):
    """The probabilities of every latent come from integers and header values only, so the symbols are
    identical in any decoder; the pixels agree across thread counts and with the numpy receiver."""
    import subprocess
    import sys

    data = latent_file[1].data
    (tmp_path / "f.inr").write_bytes(data)
    script = ("import sys, numpy as np, torch, bitstream; torch.set_num_threads(1); "
              "from codec.decoding.decoder import decode_array; d = open(sys.argv[1], 'rb').read(); "
              "np.save(sys.argv[2], np.concatenate([s.ravel() for s in bitstream.read_file(d)[1]])); "
              "np.save(sys.argv[3], decode_array(d, backend='torch', device='cpu'))")
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "f.inr"), str(tmp_path / "sym.npy"),
                    str(tmp_path / "px.npy")], check=True, env=env, timeout=120)
    here = np.concatenate([s.ravel() for s in bitstream.read_file(data)[1]])
    assert np.array_equal(np.load(tmp_path / "sym.npy"), here)
    one_thread = np.load(tmp_path / "px.npy")
    for other in (decode_array(data, backend="torch", device="cpu"), decode_array(data, backend="numpy")):
        assert np.abs(other.astype(int) - one_thread).max() <= 1
        assert np.mean(other == one_thread) > 0.999


def _smooth_grid_symbols(seed: int = 0) -> np.ndarray:
    """(2, 30, 40) symbols of a smooth grid (slow waves plus a little noise), like a trained latent grid."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:30, 0:40]
    waves = np.stack([6 * np.sin(r / 5 + c / 7), 4 * np.cos(c / 4 - r / 9)])
    return np.round(waves + rng.normal(0, 0.5, (2, 30, 40))).astype(np.int32)


def test_row_prediction_is_the_floored_weighted_mean_of_the_row_above():
    from bitstream.entropy import row_prediction

    above = np.array([4, -3, 0, 7, 1], dtype=np.int64)
    # floor((a[c-1] + 2 a[c] + a[c+1] + 2) / 4), zeros beyond the ends
    assert row_prediction(above).tolist() == [(0 + 8 - 3 + 2) // 4, (4 - 6 + 0 + 2) // 4, (-3 + 0 + 7 + 2) // 4,
                                              (0 + 14 + 1 + 2) // 4, (7 + 2 + 0 + 2) // 4]
    assert row_prediction(np.array([-1, -1], dtype=np.int64)).tolist() == [-1, -1]  # floor, not towards zero
    assert row_prediction(np.zeros(3, dtype=np.int64)).tolist() == [0, 0, 0]


def test_row_predict_model_round_trips_and_pays_on_a_smooth_grid():
    from bitstream.entropy import (PLAIN_KINDS, ROW_CONTEXT, ROW_KINDS, ROW_PREDICT, _context_model, decode_tensors,
                                   encode_tensors, measure_bits)

    q = _smooth_grid_symbols()
    model = choose_model(q, kinds=PLAIN_KINDS + ROW_KINDS)
    assert model.kind == ROW_PREDICT and len(model.classes) == 6
    context = _context_model(q, 6, None, ROW_CONTEXT)[0]  # the same classes, coding the symbols themselves
    assert measure_bits(q, model) < 0.8 * measure_bits(q, context)
    payload = encode_tensors([q], [model])
    assert np.array_equal(decode_tensors(payload, [model], [q.shape])[0], q)


def _one_grid_file(q: np.ndarray, model: TensorModel) -> bytes:
    shapes = bitstream.tensor_shapes(LATENT, 4, 1, 3, LatentGrid(40, 30, 1, 2))
    symbols = [q] + [np.zeros(s, dtype=np.int32) for s in shapes[1:]]
    records = [TensorRecord(1.0, model)] + [TensorRecord(1.0, TensorModel(0)) for _ in shapes[1:]]
    header = _latent_header(width=40, height=30, latent_levels=1, latent_channels=2, tensors=tuple(records))
    return bitstream.write_file(header, symbols)


def test_files_are_version_3_only_when_a_grid_uses_row_predict():
    import zlib

    from bitstream.entropy import ROW_CONTEXT, ROW_PREDICT, _context_model

    q = _smooth_grid_symbols()
    predicted = _one_grid_file(q, _context_model(q, 6, None, ROW_PREDICT)[0])
    plain_context = _one_grid_file(q, _context_model(q, 6, None, ROW_CONTEXT)[0])
    assert predicted[4] == 3 and plain_context[4] == 2
    assert bitstream.read_header(predicted).tensors[0].model.kind == ROW_PREDICT
    assert bitstream.read_header(plain_context).tensors[0].model.kind == ROW_CONTEXT
    for data in (predicted, plain_context):
        assert np.array_equal(bitstream.read_file(data)[1][0], q)
    downgraded = bytearray(predicted)  # the same bytes labelled version 2, checksum redone
    downgraded[4] = 2
    downgraded[-4:] = zlib.crc32(bytes(downgraded[:-4])).to_bytes(4, "little")
    with pytest.raises(InrFormatError, match="tensor 0 model 'row-predict' needs format version 3, the file says version 2"):
        bitstream.read_file(bytes(downgraded))


def test_row_predict_refuses_a_decoded_value_beyond_the_symbol_limit():
    """Differences of 20,000 in both rows of a (1, 2, 3) tensor: the second row's prediction is 20,000,
    so it decodes to 40,000, beyond what section 5 dequantizes exactly; the decoder says so."""
    import constriction

    from bitstream.entropy import ROW_PREDICT, _Built, _encode_plain, decode_tensors

    wide = TensorModel(LAPLACE, 32767, scale=1000.0)
    model = TensorModel(ROW_PREDICT, classes=(wide, wide))
    encoder = constriction.stream.queue.RangeEncoder()
    _encode_plain(encoder, np.full(3, 20000, dtype=np.int32), _Built(wide))  # row 0: class 0 (nothing above)
    _encode_plain(encoder, np.full(3, 20000, dtype=np.int32), _Built(wide))  # row 1: class 1 (capped) everywhere
    payload = encoder.get_compressed().astype("<u4").tobytes()
    with pytest.raises(InrFormatError, match="decoded a value beyond ±32767"):
        decode_tensors(payload, [model], [(1, 2, 3)])


def test_neighbour_classes_and_prediction_use_left_above_and_above_left():
    from bitstream.entropy import _neighbour_plan, neighbour_classes, neighbour_prediction

    left, above, above_left = (np.array(v, dtype=np.int64) for v in ([0, 1, -2, 3, 0], [0, -1, 1, 0, 5], [4, 0, -1, 0, 0]))
    # min(2|left| + 2|above| + |above-left|, n - 1)
    assert neighbour_classes(left, above, above_left, 8).tolist() == [4, 4, 7, 6, 7]
    assert neighbour_classes(left, above, above_left, 3).tolist() == [2, 2, 2, 2, 2]
    # floor((left + above + 1) / 2): an arithmetic shift, so negatives round down
    assert neighbour_prediction(left, above).tolist() == [0, 0, 0, 2, 3]
    assert neighbour_prediction(np.array([-1, -1, -2]), np.array([-2, 0, -1])).tolist() == [-1, 0, -1]
    q = np.array([[[1, -2, 0], [3, 0, 4]]], dtype=np.int32)  # (1, 2, 3): neighbours outside the grid are 0
    classes, diffs = _neighbour_plan(q, 8, True)
    assert classes.tolist() == [[[0, 2, 4], [2, 7, 2]]]  # e.g. (1, 1): 2|3| + 2|-2| + |1| = 11 -> 7
    assert diffs.tolist() == [[[1 - 0, -2 - 1, 0 - (-1)], [3 - 1, 0 - 1, 4 - 0]]]


def test_neighbour_kinds_code_anti_diagonals_by_class_top_to_bottom():
    """FORMAT.md 6.1's order, seen through the coder. The (1, 3, 3) grid q below has these classes
    (min(2|L| + 2|A| + |D|, 15)):
        (0,0) 0 | (0,1) 0, (1,0) 0 | (0,2) 6, (1,1) 6, (2,0) 0 | (1,2) 2*2 + 2*1 + 3 = 9, (2,1) 2*4 + 2*2 = 12 | (2,2) 12
    so anti-diagonal 2 codes (2,0) (class 0) before (0,2), (1,1) (class 6). With one LAPLACE model on the
    four classes present, the payload is that of the symbols 0; 3, 0; 4, 1, 2; 5, 0; 0 in this order
    (row-major order, or anti-diagonals top to bottom without the classes, give other payloads)."""
    import constriction

    from bitstream.entropy import NEIGHBOUR_CONTEXT, ZERO, _Built, decode_tensors, encode_tensors

    lap = TensorModel(LAPLACE, 40, scale=2.0)
    model = TensorModel(NEIGHBOUR_CONTEXT, classes=tuple(lap if k in (0, 6, 9, 12) else TensorModel(ZERO)
                                                        for k in range(16)))
    q = np.array([[[0, 3, 1], [0, 2, 5], [4, 0, 0]]], dtype=np.int32)
    payload = encode_tensors([q], [model])

    def coded(order):
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(np.array(order, dtype=np.int32), _Built(lap).values)
        return encoder.get_compressed().astype("<u4").tobytes()

    assert payload == coded([0, 3, 0, 4, 1, 2, 5, 0, 0])
    assert payload != coded(q.reshape(-1).tolist()) and payload != coded([0, 3, 0, 1, 2, 4, 5, 0, 0])
    assert np.array_equal(decode_tensors(payload, [model], [q.shape])[0], q)


def test_neighbour_models_round_trip_and_pay_on_trained_like_grids():
    from bitstream.entropy import (NEIGHBOUR_CLASSES, NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT, PLAIN_KINDS, ROW_KINDS,
                                   _context_model, decode_tensors, encode_tensors, header_bytes, measure_bits)

    def cost(q, model):
        return measure_bits(q, model) + 8 * header_bytes(model)

    rng = np.random.default_rng(3)
    r, c = np.mgrid[0:30, 0:40]  # smooth along each row, not down the columns: the left neighbour predicts it
    along_rows = np.round(6 * np.sin(c / 5 + 1.3 * r) + rng.normal(0, 0.5, (30, 40)))[None].astype(np.int32)
    rows_only = choose_model(along_rows, kinds=PLAIN_KINDS + ROW_KINDS)
    best = choose_model(along_rows)
    assert best.kind == NEIGHBOUR_PREDICT and len(best.classes) == NEIGHBOUR_CLASSES
    assert cost(along_rows, best) < 0.95 * cost(along_rows, rows_only)  # 5 % smaller (4,456 vs 4,712 bits)
    for q in (along_rows, _smooth_grid_symbols(), _grid_symbols(), np.round(rng.laplace(0, 2, (1, 17, 23))).astype(np.int32)):
        for kind in (NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT):
            model = _context_model(q, NEIGHBOUR_CLASSES, None, kind)[0]
            assert model.kind == kind
            other = choose_model(q, kinds=PLAIN_KINDS + ROW_KINDS)
            payload = encode_tensors([q, q], [model, other])  # followed by another tensor in the same stream
            back = decode_tensors(payload, [model, other], [q.shape, q.shape])
            assert np.array_equal(back[0], q) and np.array_equal(back[1], q)


def test_files_are_version_5_only_when_a_grid_uses_a_neighbour_kind():
    import zlib

    from bitstream.entropy import NEIGHBOUR_CLASSES, NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT, _context_model

    q = _smooth_grid_symbols()
    for kind, name in ((NEIGHBOUR_CONTEXT, "neighbour-context"), (NEIGHBOUR_PREDICT, "neighbour-predict")):
        data = _one_grid_file(q, _context_model(q, NEIGHBOUR_CLASSES, None, kind)[0])
        assert data[4] == 5 and bitstream.read_header(data).to_dict()["tensors"][0]["model"] == name
        assert np.array_equal(bitstream.read_file(data)[1][0], q)
        downgraded = bytearray(data)  # labelled version 4 (whose header has the same layout), checksum redone
        downgraded[4] = 4
        downgraded[-4:] = zlib.crc32(bytes(downgraded[:-4])).to_bytes(4, "little")
        with pytest.raises(InrFormatError, match=f"tensor 0 model '{name}' needs format version 5, the file says version 4"):
            bitstream.read_file(bytes(downgraded))


def test_neighbour_predict_refuses_a_decoded_value_beyond_the_symbol_limit():
    """Differences of 20,000 at (0, 0) and (0, 1) of a (1, 1, 2) tensor: (0, 1)'s prediction is
    floor((20,000 + 0 + 1) / 2) = 10,000, so it decodes to 30,000 -- within the limit; with 25,000 it would
    be 37,500, beyond what section 5 dequantizes exactly, and the decoder says so."""
    import constriction

    from bitstream.entropy import NEIGHBOUR_PREDICT, _Built, _encode_plain, decode_tensors

    wide = TensorModel(LAPLACE, 32767, scale=1000.0)
    model = TensorModel(NEIGHBOUR_PREDICT, classes=(wide, wide))
    for difference, limit_hit in ((20000, False), (25000, True)):
        encoder = constriction.stream.queue.RangeEncoder()
        _encode_plain(encoder, np.array([difference], dtype=np.int32), _Built(wide))  # (0, 0): class 0
        _encode_plain(encoder, np.array([difference], dtype=np.int32), _Built(wide))  # (0, 1): class 1 (capped)
        payload = encoder.get_compressed().astype("<u4").tobytes()
        if limit_hit:
            with pytest.raises(InrFormatError, match="decoded a value beyond ±32767"):
                decode_tensors(payload, [model], [(1, 1, 2)])
        else:
            assert decode_tensors(payload, [model], [(1, 1, 2)])[0].tolist() == [[[20000, 30000]]]


def test_auto_picks_the_latent_grids_where_they_fit_and_pay():
    from codec.config import DEFAULT_ARCH, MlpSettings
    from codec.encoding import resolve_family

    def arch(cfg, *size):
        return resolve_family(cfg.validated(), *size).arch

    assert DEFAULT_ARCH == "auto" and EncoderConfig().arch == "auto"
    medium = EncoderConfig()  # preset "medium", 0.3 bpp
    assert arch(medium, 768, 512, 3) == "latent"  # a Kodak photo: header and MLP ~6 % of the file
    assert arch(medium, 512, 512, 1) == "latent"
    assert arch(medium, 256, 256, 3) == "siren"  # header and MLP would be a third of 2.4 kB
    assert arch(EncoderConfig(bpp=0.6), 256, 256, 3) == "latent"
    assert arch(medium, 2048, 1536, 3) == "latent"  # 4.2 M latents: decoders take 4 a pixel
    assert arch(medium, 4032, 3024, 3) == "latent"  # a 12 MP phone photo
    for siren_only in (EncoderConfig(sparsity=0.2), EncoderConfig(init="meta"),
                       EncoderConfig(mlp=MlpSettings(hidden_width=32, hidden_layers=3))):
        assert arch(siren_only, 768, 512, 3) == "siren"
    assert arch(EncoderConfig(arch="poly"), 768, 512, 3) == "poly"  # a named family stays
    with pytest.raises(ValueError, match="resolve it"):
        EncoderConfig().arch_id


@pytest.mark.slow
def test_auto_encodes_a_small_image_at_a_high_rate_with_the_latent_grids():
    pixels = smooth_image(96, 128, 3)  # header and MLP ~0.85 kB: 14 % of a 4 bpp file, 55 % of a 1 bpp one
    auto = encode_pixels(pixels, EncoderConfig(bpp=4.0, steps=30, device="cpu"))
    assert auto.arch == "latent" and bitstream.read_header(auto.data).arch == LATENT
    low = encode_pixels(pixels, EncoderConfig(bpp=1.0, steps=30, device="cpu"))
    assert low.arch == "siren" and bitstream.read_header(low.data).arch == SIREN


def _trained_like_model(seed: int = 0):
    """A 24 x 32 latent model with random latents and MLP, and the pixel centres and a target image."""
    from codec.encoding import latent as le
    from codec.coords import grid as pixel_centres

    torch.manual_seed(seed)
    grid = LatentGrid(width=32, height=24, levels=3, channels=1)
    model = LatentGridInr(channels=3, hidden_width=le.DEFAULTS.synth_width, hidden_layers=le.DEFAULTS.synth_layers, grid=grid)
    with torch.no_grad():
        for g in model.latents:
            g.normal_(0, 3)
    coords = pixel_centres(24, 32)
    target = torch.tanh(model(coords).detach() + 0.1 * torch.randn(24 * 32, 3))
    return model, coords, target


def test_synthesis_steps_scale_the_hidden_and_output_steps_apart():
    from codec.encoding import latent as le

    assert le.synthesis_steps(6) == [2.0**-8] * 4 + [2.0**-6] * 2
    assert le.synthesis_steps(6, (4, 2)) == [2.0**-6] * 4 + [2.0**-5] * 2


def test_the_mlp_steps_are_chosen_by_mse_plus_lambda_times_their_bits():
    """lambda 0 takes the candidate of least MSE, a huge lambda the one of fewest bits, and each choice is
    the least cost of all candidates, as measured here apart."""
    from codec.encoding import latent as le

    model, coords, target = _trained_like_model()
    mlp = model.parameters_in_file_order()[model.grid.levels:]
    features = model.features(coords, [torch.round(g) for g in model.latents]).detach()

    def mse_and_bits(factors):
        steps = le.synthesis_steps(len(mlp), factors)
        with torch.no_grad():
            out = model.synthesis(features, [le.fake_quantize(p, s) for p, s in zip(mlp, steps)])
        return float(torch.mean((out - target) ** 2)), le.coded_bits(mlp, steps)

    measured = {f: mse_and_bits(f) for f in le.DEFAULTS.synth_step_factors}
    assert len({bits for _, bits in measured.values()}) > 1 and len({m for m, _ in measured.values()}) > 1
    n_pix = coords.shape[0]
    for lam in (0.0, 1e-4, 1e-3, 1e-2, 1e6):
        chosen = le.choose_synthesis_steps(model, coords, target, lam)
        factors = next(f for f in le.DEFAULTS.synth_step_factors if le.synthesis_steps(len(mlp), f) == chosen)
        costs = {f: m + lam * b / n_pix for f, (m, b) in measured.items()}
        assert costs[factors] == pytest.approx(min(costs.values()), rel=1e-6)
    fewest = min(le.DEFAULTS.synth_step_factors, key=lambda f: measured[f][1])
    assert le.choose_synthesis_steps(model, coords, target, 1e6) == le.synthesis_steps(len(mlp), fewest)


def test_the_file_stores_the_mlp_at_the_steps_the_fit_chose(latent_file):
    pixels, result = latent_file
    header, _ = bitstream.read_file(result.data)
    from codec.encoding import latent as le

    mlp_steps = [r.step for r in header.tensors[header.latent_levels:]]
    assert mlp_steps in [le.synthesis_steps(len(mlp_steps), f) for f in le.DEFAULTS.synth_step_factors]


@pytest.mark.parametrize("sampling", [BILINEAR, BICUBIC])
@pytest.mark.parametrize("n_out,cells", [(8, 4), (13, 4), (32, 4), (12, 12), (9, 2)])
def test_each_pixel_reads_at_most_one_latent_of_a_phase(sampling, n_out, cells):
    """The premise of the grouped rounding: of the cells that one pixel centre reads (nonzero weight),
    exactly one has each index modulo the tap span, and axis_owners names it."""
    from codec.encoding.latent_rounding import axis_owners, tap_span
    from codec.families.latent.numpy import axis_taps

    span = tap_span(n_out, cells, sampling)
    indices, weights = axis_taps(n_out, cells, np.dtype(np.float64), sampling)
    if span == 1:  # a cell per pixel: each centre reads its own cell, the rest is float rounding
        assert np.all(axis_owners(n_out, cells, sampling, 1, 0) == np.arange(n_out))
        assert np.all(np.sort(np.abs(weights), axis=0)[:-1] < 1e-12)
        return
    for phase in range(span):
        owners = axis_owners(n_out, cells, sampling, span, phase)
        for p in range(n_out):
            read = {int(i) for i, w in zip(indices[:, p], weights[:, p]) if w != 0 and i % span == phase}
            assert len(read) <= 1
            assert owners[p] == (read.pop() if read else -1)


def test_rd_rounding_at_lambda_zero_only_lowers_the_image_error():
    """With lambda 0 a move is kept only where it lowers the squared error of the pixels it changes, and
    latents moved together change disjoint pixels, so the whole image's error falls by exactly the sum."""
    from codec.encoding import latent as le
    from codec.encoding.latent_rounding import rd_round

    model, coords, _ = _trained_like_model(seed=1)
    target = model(coords).detach()  # the unrounded latents' image: rounding moves away from it
    steps = le.synthesis_steps(len(model.parameters_in_file_order()) - model.grid.levels)
    mlp = model.parameters_in_file_order()[model.grid.levels:]

    def error(latents):
        with torch.no_grad():
            out = model.synthesis(model.features(coords, latents), [le.fake_quantize(p, s) for p, s in zip(mlp, steps)])
            return float(((out - target) ** 2).sum())

    plain = [torch.round(g.detach()) for g in model.latents]
    moved_latents, moved = rd_round(model, target, 0.0, steps, n_classes=8)
    assert moved > 0
    assert error(moved_latents) < error(plain)
    changed = sum(int((a != b).sum()) for a, b in zip(moved_latents, plain))
    assert changed == moved
    for a, b in zip(moved_latents, plain):
        assert torch.all((a - b).abs() <= 1) and torch.all(a.abs() <= b.abs())


def _reference_rd_round(model, target, lam, steps, moves):
    """rd_round the slow way: every trial move of a latent evaluated alone on the whole image, from the
    state at the start of its phase group (the grouping the fast version uses), then the group's chosen
    moves applied together."""
    from codec.encoding import latent as le
    from codec.encoding.latent_rounding import class_code_lengths, tap_span

    coords = pixel_centres_of(model)
    mlp = model.parameters_in_file_order()[model.grid.levels:]
    weights = [le.fake_quantize(p, s).detach() for p, s in zip(mlp, steps)]

    def sq_error(latents):
        with torch.no_grad():
            out = model.synthesis(model.features(coords, latents), weights)
            return ((out - target) ** 2).sum(dim=1).double()

    q = [torch.round(g.detach()) for g in model.latents]
    moved = 0
    for level in range(model.grid.levels):
        _, rows, cols = q[level].shape
        rs, cs = tap_span(model.grid.height, rows, model.grid.sampling), tap_span(model.grid.width, cols, model.grid.sampling)
        for rp in range(rs):
            for cp in range(cs):
                plane = q[level][0].clone()
                classes, bits, offset = class_code_lengths(plane, 8)
                base = sq_error(q)
                new_plane = plane.clone()
                for r in range(rp, rows, rs):
                    for c in range(cp, cols, cs):
                        v = float(plane[r, c])
                        tries = ([v - math.copysign(1, v)] if v else []) if moves == "towards-zero" else [v - 1, v + 1]
                        best, best_v = 0.0, None
                        for w in tries:
                            trial = [t.clone() for t in q]
                            trial[level][0, r, c] = w
                            d_bits = float(bits[classes[r, c], int(w) + offset] - bits[classes[r, c], int(v) + offset])
                            cost = float((sq_error(trial) - base).sum()) / target.shape[1] + lam * d_bits
                            if cost < best:
                                best, best_v = cost, w
                        if best_v is not None:
                            new_plane[r, c] = best_v
                            moved += 1
                q[level][0] = new_plane
    return q, moved


def pixel_centres_of(model):
    from codec.coords import grid as pixel_centres

    return pixel_centres(model.grid.height, model.grid.width)


@pytest.mark.parametrize("moves", ["towards-zero", "either"])
@pytest.mark.parametrize("lam", [0.0, 2e-3])
def test_grouped_rd_rounding_is_the_latent_by_latent_search(moves, lam):
    """The fast rd_round (a phase's latents moved together, each one's error change read off the pixels it
    owns) makes exactly the choices of moving every latent alone and measuring the whole image."""
    from codec.encoding import latent as le
    from codec.encoding.latent_rounding import rd_round

    torch.manual_seed(3)
    grid = LatentGrid(width=16, height=12, levels=3, channels=1)
    model = LatentGridInr(channels=3, hidden_width=8, hidden_layers=2, grid=grid)
    with torch.no_grad():
        for g in model.latents:
            g.normal_(0, 2)
    coords = pixel_centres_of(model)
    target = model(coords).detach() + 0.05 * torch.randn(12 * 16, 3)
    steps = le.synthesis_steps(6)
    fast, moved = rd_round(model, target, lam, steps, n_classes=8, moves=moves)
    slow, slow_moved = _reference_rd_round(model, target, lam, steps, moves)
    assert moved == slow_moved > 0
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)


def test_a_rounded_file_over_the_budget_is_rounded_again_at_a_higher_lambda():
    """Over the budget after its rounding, the encoder rounds towards zero at a higher lambda until the file
    at latent step 1 fits (rather than coarsening the step, which re-rounds every latent)."""
    from codec.encoding import latent as le

    model, coords, target = _trained_like_model(seed=2)
    pixels = np.clip(np.round((target.numpy().reshape(24, 32, 3) + 1) * 127.5), 0, 255).astype(np.uint8)
    target = torch.from_numpy(pixels.reshape(-1, 3).astype(np.float32) / 127.5 - 1)
    steps = le.synthesis_steps(len(model.parameters_in_file_order()) - model.grid.levels)
    start = [g.detach().clone() for g in model.latents]
    lam = 1e-3
    moved, moves = le.round_latents_for_rate(model, target, pixels, lam, steps, device="cpu")
    assert moved and moves == "towards-zero"
    rounded_size = len(le.serialize(model, 1.0, synth_steps=steps))
    budget = rounded_size - 8  # 1,222 bytes rounded at lambda 1e-3; 1,210 at 1e-2
    with torch.no_grad():
        for g, s in zip(model.latents, start):
            g.copy_(s)
    moved, moves = le.round_latents_for_rate(model, target, pixels, lam, steps, device="cpu", budget_bytes=budget)
    assert moves.startswith("towards-zero, lambda x ")
    assert len(le.serialize(model, 1.0, synth_steps=steps)) <= budget < rounded_size
    assert all(torch.equal(g, torch.round(g)) for g in model.latents)


def test_latents_learn_faster_in_short_fits_and_where_a_batch_covers_a_small_share_of_the_image():
    from codec.config import LatentSettings
    from codec.encoding.latent import batch_pixels, latent_lr_scale

    def scale(width, height, steps, settings=LatentSettings()):
        n = width * height
        return latent_lr_scale(n, batch_pixels(n, None, "cpu", settings), steps, settings)

    assert scale(768, 512, 3083) == 1.0 and scale(768, 512, 1200) == 1.0  # the default effort: as tuned
    assert scale(768, 512, 600) == pytest.approx(2.0)  # effort 3
    assert scale(768, 512, 130) == 4.0  # effort 2: at most latent_lr_max
    assert scale(2268, 1512, 513) == 4.0  # a 3.4 MP photo: 1/24 of it a batch, ~500 steps
    assert scale(2268, 1512, 4800) == 1.0  # a long fit of it: no boost
    assert scale(1404, 936, 1248) == pytest.approx(1200 / 1248 * math.sqrt(1404 * 936 / 6 / 65536), rel=1e-6)
    assert scale(512, 512, 100, LatentSettings(latent_lr_max=2.0)) == 2.0
    assert latent_lr_scale(96 * 64, 96 * 64, 40) == 1.0  # whole-image batches (small images, a GPU)
    for bad in ({"latent_lr_share": 0.0}, {"latent_lr_max": 0.5}, {"latent_lr_steps": 0}):
        with pytest.raises(OptionError):
            LatentSettings(**bad).validated()


def test_compiling_the_cpu_kernels_counts_against_neither_the_plan_nor_the_time_cap(monkeypatch):
    """A machine's first encode compiles the CPU step (tens of seconds): a short budget must still get its
    planned steps and the bytes of any later encode, not a flat image from a fit cut before its first step."""
    import time

    from codec.encoding import latent as latent_encoder

    pixels = smooth_image(40, 56, 3, seed=5)
    cfg = EncoderConfig(arch="latent", bpp=6.0, time_budget=3.0, device="cpu")  # plans the fewest steps
    warm = latent_encoder.warm_up

    def slow_first_compile() -> float:  # as the first encode after installing: the compile outlasts the budget
        time.sleep(3.5)
        return warm() + 3.5

    later = encode_pixels(pixels, cfg)
    monkeypatch.setattr(latent_encoder, "warm_up", slow_first_compile)
    first = encode_pixels(pixels, cfg)
    assert first.steps == later.steps >= latent_encoder.MIN_PLANNED_STEPS and not first.time_capped
    assert first.data == later.data
