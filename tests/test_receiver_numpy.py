"""The receiver without torch: bitstream + rebuild + render on numpy alone.

torch's absence is simulated in subprocesses with sys.modules["torch"] = None (import fails as
if torch were not installed). Pixels are compared with the torch decoder's.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.robustness.fuzz_inr import corpus
from codec import decode
from codec.decoding.decoder import decode_array

NO_TORCH = "import sys; sys.modules['torch'] = None\n"


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH + code, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def files(rgb_file):
    return [rgb_file[1].data] + corpus(real=False)


@pytest.mark.parametrize("size", [None, (97, 61), (300, 200)])
def test_numpy_pixels_equal_torch_pixels(files, size):
    for data in files:
        a = decode_array(data, size=size, backend="torch", device="cpu")
        b = decode_array(data, size=size, backend="numpy")
        diff = np.abs(a.astype(int) - b)
        # documented bound (README, "Receiver without torch"): at most 1 level, on under 0.1 % of values
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_numpy_chunking_does_not_change_pixels(files, monkeypatch):
    import codec.decoding.numpy_render as numpy_render

    whole = decode_array(files[0], res=64, backend="numpy")
    monkeypatch.setattr(numpy_render, "CHUNK_ACTIVATIONS", 16 * 64)  # one row per chunk
    assert np.array_equal(decode_array(files[0], res=64, backend="numpy"), whole)


def test_importing_the_codec_and_cli_does_not_import_torch():
    proc = subprocess.run([sys.executable, "-c", "import sys, codec, codec.cli, codec.decoding; "
                           "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "False", proc.stderr


def test_api_decode_without_torch_matches_torch(files, tmp_path):
    path = tmp_path / "a.inr"
    path.write_bytes(files[0])
    code = ("import sys, json, numpy as np, codec\n"
            "img = codec.decode(open(sys.argv[1], 'rb').read(), res=80)\n"
            "print(json.dumps({'mode': img.mode, 'size': img.size, 'pixels': np.asarray(img).tolist(),"
            " 'torch': 'torch' in sys.modules and sys.modules['torch'] is not None}))")
    proc = _run(code, str(path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected = decode(files[0], res=80, backend="torch", device="cpu")
    assert out["mode"] == expected.mode and tuple(out["size"]) == expected.size and out["torch"] is False
    diff = np.abs(np.array(out["pixels"]) - np.asarray(expected).astype(int))
    assert diff.max() <= 1


def test_cli_decode_without_torch(files, tmp_path):
    path = tmp_path / "a.inr"
    path.write_bytes(files[0])
    main = "from codec.cli import decode_main; sys.exit(decode_main())"
    proc = _run(main, str(path), "-o", str(tmp_path / "np.png"), "--res", "50")
    assert proc.returncode == 0 and proc.stderr == ""
    from PIL import Image

    expected = np.asarray(decode(files[0], res=50, backend="torch", device="cpu")).astype(int)
    assert np.abs(np.asarray(Image.open(tmp_path / "np.png")).astype(int) - expected).max() <= 1
    for extra, words in ((["--device", "cuda"], "needs torch"), (["--backend", "torch"], "torch is not installed")):
        proc = _run(main, str(path), "-o", str(tmp_path / "x.png"), *extra)
        assert proc.returncode == 2 and words in proc.stderr and proc.stderr.count("\n") == 1
        assert not (tmp_path / "x.png").exists()


def test_encoding_without_torch_is_a_one_line_error(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 6), (10, 20, 30)).save(tmp_path / "a.png")
    proc = _run("from codec.cli import encode_main; sys.exit(encode_main())", str(tmp_path / "a.png"),
                str(tmp_path / "a.inr"), "--steps", "2")
    assert proc.returncode == 1, proc.stderr
    assert "needs torch" in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "a.inr").exists()
    proc = _run("import codec\ntry:\n    codec.encode(b'')\nexcept ImportError as e:\n    print(e)")
    assert "needs torch" in proc.stdout, proc.stderr


def test_unknown_architecture_has_a_clear_numpy_error(files):
    import dataclasses

    from bitstream import InrFormatError, read_header
    from codec.decoding.numpy_render import evaluator_for

    header = dataclasses.replace(read_header(files[0]), arch=99)
    with pytest.raises(InrFormatError, match="architecture 99 is not a family this codec knows"):
        evaluator_for(header)
