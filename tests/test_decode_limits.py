"""Bounded decode work: a tiny valid file declaring a huge network and image is refused at once.

The work bomb of issue 11: 59 bytes with a valid CRC, a 4-layer width-1024 SIREN with all-zero
weights (no payload) and an 8192x8192 image. Each of the parameter and pixel limits passes; the
product (multiply-adds x pixels) is what the decoder must bound.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

import bitstream
from bitstream import ZERO
from benchmarks.robustness.fuzz_inr import crafted_file
from codec import DecodeLimits, DecodeWorkError, InrFormatError, OptionError, decode
from codec.cli import decode_main
from codec.encoding.mlp import architecture_for_budget, params_for_rate
from codec.decoding.decoder import DEFAULT_MAX_WORK, check_work, multiply_adds_per_pixel


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = crafted_file(np.random.default_rng(0), channels=3, hidden_width=1024, hidden_layers=4,
                        width=8192, height=8192, kinds=(ZERO,))
    assert len(data) == 59
    header = bitstream.read_header(data)
    assert header.to_dict()["parameters"] <= bitstream.DEFAULT_MAX_PARAMETERS  # each limit alone passes
    assert 8192 * 8192 <= 89_478_485
    return data


@pytest.mark.parametrize("options", [{}, {"res": 512}])
def test_work_bomb_is_refused_fast(bomb, options):
    t0 = time.perf_counter()
    with pytest.raises(DecodeWorkError) as info:
        decode(bomb, device="cpu", **options)
    assert time.perf_counter() - t0 < 1.0
    msg = str(info.value)
    assert isinstance(info.value, InrFormatError)
    side = options.get("res", 8192)
    work = 3_150_848 * side * side
    assert f"{side}x{side} pixels" in msg and "3150848 multiply-adds per pixel" in msg
    assert f"{work:.3g}" in msg and f"{DEFAULT_MAX_WORK:.3g}" in msg and "--max-work" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("extra", [[], ["--res", "512"]])
def test_cli_refuses_the_work_bomb_with_one_line_and_exit_1(bomb, tmp_path, capsys, extra):
    (tmp_path / "bomb.inr").write_bytes(bomb)
    out = tmp_path / "x.png"
    t0 = time.perf_counter()
    assert decode_main([str(tmp_path / "bomb.inr"), "-o", str(out), *extra]) == 1
    assert time.perf_counter() - t0 < 1.0
    err = capsys.readouterr().err
    assert err.startswith("inr-decode: error: decoding ") and "--max-work" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.slow
def test_the_limit_is_exact_and_can_be_raised(rgb_file, tmp_path, capsys):
    _, result = rgb_file
    header = bitstream.read_header(result.data)
    work = multiply_adds_per_pixel(header) * 20 * 12
    assert multiply_adds_per_pixel(header) == 2 * 16 + 16 * 16 + 16 * 3
    decode(result.data, device="cpu", max_work=work)
    decode(result.data, device="cpu", limits=DecodeLimits(max_work=work))
    with pytest.raises(DecodeWorkError):
        decode(result.data, device="cpu", max_work=work - 1)
    with pytest.raises(DecodeWorkError):  # derivative views cost more
        decode(result.data, device="cpu", max_work=work, render="gradient")
    path = tmp_path / "a.inr"
    path.write_bytes(result.data)
    assert decode_main([str(path), "-o", str(tmp_path / "a.png"), "--max-work", str(work - 1)]) == 1
    assert decode_main([str(path), "-o", str(tmp_path / "c.png"), "--max-work", str(work)]) == 0
    assert decode_main([str(path), "-o", str(tmp_path / "b.png"), "--max-work", "1e6"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1.5", "inf"])
def test_bad_max_work_is_a_usage_error(text, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        decode_main([str(tmp_path / "a.inr"), "--max-work", text])
    assert info.value.code == 2
    assert "--max-work" in capsys.readouterr().err


def test_bad_limits_are_option_errors(rgb_file):
    _, result = rgb_file
    for bad in (0, -1, 1.5, True):
        with pytest.raises(OptionError, match="max_work"):
            decode(result.data, device="cpu", max_work=bad)


def test_default_limit_admits_a_06_bpp_kodak_file_at_4k_and_refuses_the_bomb_at_512(bomb):
    """The reasoning behind DEFAULT_MAX_WORK: between a legitimate 4K decode and the bomb at 512 px."""
    width, layers = architecture_for_budget(params_for_rate(0.6, 768, 512, sparsity=0.0), 3)
    records = tuple(bitstream.TensorRecord(0.0, bitstream.TensorModel(ZERO))
                    for _ in range(2 * (layers + 1)))
    legit = bitstream.Header(width=768, height=512, channels=3, arch=bitstream.SIREN, hidden_width=width,
                             hidden_layers=layers, omega0=30.0, init_id=0, tensors=records)
    limits = DecodeLimits()
    assert check_work(legit, 3840, 2560, limits) < DEFAULT_MAX_WORK / 1.3  # --res 3840 of a 3:2 image
    with pytest.raises(DecodeWorkError):
        check_work(bitstream.read_header(bomb), 512, 512, limits)


def test_installed_script_refuses_the_bomb(bomb, tmp_path):
    (tmp_path / "bomb.inr").write_bytes(bomb)
    proc = subprocess.run([sys.executable, "-c", "import sys; from codec.cli import decode_main; sys.exit(decode_main())",
                           str(tmp_path / "bomb.inr"), "-o", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "multiply-adds" in proc.stderr and not (tmp_path / "x.png").exists()
