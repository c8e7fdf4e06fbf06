"""Unit tests of the format pieces: coordinates, SIREN init, golden header bytes, entropy models."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import bitstream
from bitstream import Header, TensorModel, TensorRecord
from codec.coords import axis, grid
from codec.families.siren.model import Siren


def test_coordinates_are_pixel_centres_per_axis():
    assert axis(1).tolist() == [0.0]
    assert axis(2).tolist() == [-0.5, 0.5]
    assert axis(4).tolist() == [-0.75, -0.25, 0.25, 0.75]
    g = grid(2, 4)
    assert g.shape == (8, 2)
    assert g[0].tolist() == [-0.75, -0.5] and g[-1].tolist() == [0.75, 0.5]  # (x, y), row-major
    assert torch.equal(grid(6, 4, row_start=2, row_stop=5), grid(6, 4)[8:20])


def test_siren_initialisation_follows_the_paper():
    torch.manual_seed(0)
    model = Siren(channels=3, hidden_width=64, hidden_layers=3, omega0=30.0)
    first, hidden = model.sines[0].linear.weight, model.sines[1].linear.weight
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.45
    bound = np.sqrt(6 / 64) / 30
    assert hidden.abs().max() <= bound and hidden.abs().max() > 0.9 * bound
    assert model(torch.zeros(5, 2)).shape == (5, 3)


GOLDEN_HEADER = bytes.fromhex(
    "1400" "0c00" "03" "01" "0800" "02" "0000f041" "00"  # 20x12, RGB, SIREN, 8 wide, 2 layers, omega0 30, init 0
    "002c" "01" "0500" "003c"  # tensor 0: step 0.0625, laplace, max_abs 5, scale 1.0
    "0038" "00"  # tensor 1: step 0.5, zero
    "0030" "02" "0100" "0305" "01"  # tensor 2: step 0.125, histogram, max_abs 1, counts 3 5 1
) + bytes.fromhex("003c00") * 3


def _golden_header() -> Header:
    records = [
        TensorRecord(0.0625, TensorModel(bitstream.LAPLACE, 5, scale=1.0)),
        TensorRecord(0.5, TensorModel(bitstream.ZERO)),
        TensorRecord(0.125, TensorModel(bitstream.HISTOGRAM, 1, counts=(3, 5, 1))),
    ] + [TensorRecord(1.0, TensorModel(bitstream.ZERO))] * 3
    return Header(width=20, height=12, channels=3, arch=bitstream.SIREN, hidden_width=8, hidden_layers=2,
                  omega0=30.0, init_id=0, tensors=tuple(records))


def test_golden_header_bytes():
    from bitstream.header import pack_header, unpack_header

    header = _golden_header()
    assert pack_header(header) == GOLDEN_HEADER
    assert unpack_header(GOLDEN_HEADER) == header


def test_golden_file_framing():
    header = _golden_header()
    shapes = header.tensor_shapes()
    assert shapes == [(8, 2), (8,), (8, 8), (8,), (3, 8), (3,)]
    symbols = [np.zeros(s, dtype=np.int32) for s in shapes]
    symbols[0][0, 0] = -5
    symbols[2][:] = np.resize([-1, -1, -1, 0, 0, 0, 0, 0, 1], (8, 8))
    data = bitstream.write_file(header, symbols)
    assert data[:4] == b"\x89INR" and data[4] == 1
    assert int.from_bytes(data[5:7], "little") == len(GOLDEN_HEADER)
    assert data[7 : 7 + len(GOLDEN_HEADER)] == GOLDEN_HEADER
    h2, s2 = bitstream.read_file(data)
    assert h2 == header and all(np.array_equal(a, b) for a, b in zip(symbols, s2))


@pytest.mark.parametrize("seed", range(3))
def test_chosen_entropy_model_round_trips_and_is_the_smallest(seed):
    rng = np.random.default_rng(seed)
    sym = np.round(rng.laplace(0, 4, (40, 40))).astype(np.int32)
    sym[rng.random(sym.shape) < 0.5 * seed] = 0
    model = bitstream.choose_model(sym)
    from bitstream.entropy import HISTOGRAM, LAPLACE, decode_tensors, encode_tensors, measure_bits

    payload = encode_tensors([sym], [model])
    assert np.array_equal(decode_tensors(payload, [model], [sym.shape])[0], sym)
    bits = len(payload) * 8
    assert bits < sym.size * 5  # far below a fixed-length code of the alphabet


def test_bitstream_does_not_import_torch():
    code = "import sys, bitstream; bitstream.read_file; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_decoder_does_not_import_fitting_code():
    code = ("import sys, codec.decoding; bad = [m for m in sys.modules if m.startswith(('codec.encoding', 'torchao'))]; "
            "sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
