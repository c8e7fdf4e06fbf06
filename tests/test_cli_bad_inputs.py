"""Bad inputs to inr-encode / inr-decode / inr-info: one clear stderr line, the right exit code,
no partial output, an existing file never replaced by a failed run.

The cases are the ones of benchmarks/bad_inputs.py (which runs them through the console scripts);
here they run in-process for speed, plus one real subprocess run of the installed script.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bitstream
from benchmarks.robustness.bad_inputs import DECODE_CASES, ENCODE_CASES, FAST, expand, make_inputs, make_inr_inputs
from codec import cli
from codec.imageio import load_pixels

MAINS = {"inr-encode": cli.encode_main, "inr-decode": cli.decode_main, "inr-info": cli.info_main}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-inputs")
    paths = make_inputs(folder)
    paths.update(make_inr_inputs(folder))
    return folder, paths


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = MAINS[argv[0]](argv[1:])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _tmp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("case", ENCODE_CASES + DECODE_CASES, ids=lambda c: f"{c.argv[0]}: {c.label}")
def test_bad_input(case, inputs, capsys):
    folder, paths = inputs
    index = (ENCODE_CASES + DECODE_CASES).index(case) + 1000
    argv = expand(case.argv, paths, folder, index)
    existing = paths["existing.inr"].read_bytes()
    good_png = paths["good.png"].read_bytes()
    code, _, err = run_main(argv, capsys)
    assert code == case.expect, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if case.expect != 0:
        assert len(lines) == 1, err
        assert lines[0].startswith(f"{argv[0]}: error: "), err
    assert "Traceback" not in err
    if case.output_must_not_exist:
        assert not (folder / f"out{index}.inr").exists() and not (folder / f"out{index}.png").exists()
    assert paths["existing.inr"].read_bytes() == existing
    assert paths["good.png"].read_bytes() == good_png
    assert _tmp_files(folder) == []


def test_messages_name_the_problem(inputs, capsys):
    folder, paths = inputs
    expected = {
        "missing.png": "no such file", "a_directory": "directory", "empty.png": "empty",
        "notes.txt": "not an image", "truncated.png": "truncated", "bomb.png": "too large",
        "large.png": "too large", "gray16.png": "8 bits", "rgb16.png": "8 bits", "cmyk.jpg": "CMYK",
        "cmyk.tif": "CMYK", "rgba_transparent.png": "transparency", "palette_transparent.png": "transparency",
    }
    for name, words in expected.items():
        code, _, err = run_main(["inr-encode", str(paths[name]), str(folder / "never.inr")], capsys)
        assert code == 1 and words in err, (name, err)
        assert "--convert" in err or name not in ("gray16.png", "rgb16.png", "cmyk.jpg", "rgba_transparent.png")


def test_input_policy(inputs):
    _, paths = inputs
    assert load_pixels(paths["palette.png"]).shape[2] == 3
    assert load_pixels(paths["bilevel.png"]).shape[2] == 1
    assert load_pixels(paths["rgba_opaque.png"]).shape[2] == 3
    gray = load_pixels(paths["gray16.png"], convert=True)
    assert gray.shape == (24, 32, 1) and gray.dtype == np.uint8
    assert load_pixels(paths["rgb16.png"], convert=True).shape == (24, 32, 3)
    assert load_pixels(paths["cmyk.jpg"], convert=True).shape == (24, 32, 3)
    white = load_pixels(paths["rgba_transparent.png"], convert=True)
    assert white.shape == (24, 32, 3)
    assert load_pixels(paths["one_pixel.png"]).shape == (1, 1, 3)
    assert load_pixels(paths["one_column.png"]).shape == (40, 1, 3)


def test_existing_output_unchanged_after_failed_forced_run(inputs, capsys):
    folder, paths = inputs
    target = folder / "keep.inr"
    target.write_bytes(b"keep me")
    code, _, err = run_main(["inr-encode", str(paths["notes.txt"]), str(target), "--force"], capsys)
    assert code == 1 and target.read_bytes() == b"keep me"
    png = folder / "keep.png"
    png.write_bytes(b"keep me too")
    code, _, err = run_main(["inr-decode", str(paths["bitflip.inr"]), "-o", str(png), "--force"], capsys)
    assert code == 1 and png.read_bytes() == b"keep me too"
    code, _, err = run_main(["inr-decode", str(paths["gigantic_image.inr"]), "-o", str(png), "--force"], capsys)
    assert code == 1 and png.read_bytes() == b"keep me too"


@pytest.mark.parametrize("exc, code", [(KeyboardInterrupt(), 130), (OSError(28, "No space left on device"), 1)])
def test_interrupted_or_failed_write_leaves_no_partial_file(inputs, capsys, monkeypatch, exc, code):
    folder, paths = inputs
    target = folder / f"interrupted{code}.inr"
    target.write_bytes(b"old content")
    real_replace = os.replace

    def boom(src, dst):
        raise exc

    monkeypatch.setattr(os, "replace", boom)
    got, _, err = run_main(["inr-encode", str(paths["good.png"]), str(target), "--force", *FAST], capsys)
    monkeypatch.setattr(os, "replace", real_replace)
    assert got == code, err
    assert target.read_bytes() == b"old content"
    assert _tmp_files(folder) == []
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.strip()]) == 1

    # and a write that dies half-way through the data
    class Dying:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise exc

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: Dying(real_fdopen(fd, mode, *a, **k)))
    got, _, err = run_main(["inr-decode", str(paths["good.inr"]), "-o", str(folder / "half.png")], capsys)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert got == code, err
    assert not (folder / "half.png").exists()
    assert _tmp_files(folder) == []


def test_force_overwrites_on_success(inputs, capsys):
    folder, paths = inputs
    target = folder / "forced.inr"
    target.write_bytes(b"old")
    code, _, err = run_main(["inr-encode", str(paths["good.png"]), str(target), "--force", *FAST], capsys)
    assert code == 0, err
    assert bitstream.read_header(target.read_bytes()).width == 32


def test_decode_output_equal_to_input(inputs, capsys):
    folder, paths = inputs
    copy = folder / "self.png"
    shutil.copy(paths["good.inr"], copy)  # an .inr named .png: the default output is the input itself
    before = copy.read_bytes()
    code, _, err = run_main(["inr-decode", str(copy), "--force"], capsys)
    assert code == 1 and "overwrite the input" in err
    assert copy.read_bytes() == before


@pytest.mark.slow
def test_encode_is_deterministic(inputs):
    from codec.config import EncoderConfig, MlpSettings
    from codec.encoding import encode_pixels

    _, paths = inputs
    pixels = load_pixels(paths["good.png"])
    cfg = EncoderConfig(mlp=MlpSettings(hidden_width=10, hidden_layers=2, bits=8), steps=10, device="cpu", seed=3)
    assert encode_pixels(pixels, cfg).data == encode_pixels(pixels, cfg).data


def test_console_script_subprocess(inputs):
    """The installed inr-decode on a corrupted file: exit 1, one line, no traceback."""
    folder, paths = inputs
    script = Path(sys.executable).parent / "inr-decode"
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from codec.cli import decode_main; sys.exit(decode_main())"]
    proc = subprocess.run([*cmd, str(paths["bitflip.inr"]), "-o", str(folder / "sub.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "checksum" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (folder / "sub.png").exists()


def test_huge_png_is_refused_before_decoding_pixels(inputs):
    """The size check happens on the declared size, before Pillow allocates the pixels."""
    import time
    import tracemalloc

    _, paths = inputs
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(Exception) as info:
        load_pixels(paths["large.png"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "too large" in str(info.value)
    assert time.perf_counter() - t0 < 1.0 and peak < 16 << 20


def test_image_bytes_and_pil_sources(inputs):
    from codec import ImageInputError

    _, paths = inputs
    with pytest.raises(ImageInputError):
        load_pixels(b"")
    with pytest.raises(ImageInputError):
        load_pixels(paths["truncated.png"].read_bytes())
    with pytest.raises(ImageInputError):
        load_pixels(Image.new("CMYK", (4, 4)))
    with pytest.raises(ImageInputError):
        load_pixels(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ImageInputError):
        load_pixels(np.zeros((0, 4, 3), dtype=np.uint8))


def test_written_files_get_the_usual_permissions(tmp_path):
    """Outputs are created like any new file (0o666 less the umask), not 0o600 like a temp file."""
    import os

    from codec.imageio import write_atomic

    mask = os.umask(0o022)
    try:
        out = tmp_path / "x.inr"
        write_atomic(out, b"abc")
    finally:
        os.umask(mask)
    assert out.read_bytes() == b"abc"
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["x.inr"]


def test_info_into_a_closed_pipe_stops_quietly(tmp_path):
    """`inr-info f.inr | head -c 1`-style use: no traceback, no error line, exit 141 (128 + SIGPIPE)."""
    from benchmarks.robustness.fuzz_inr import crafted_file

    path = tmp_path / "a.inr"
    path.write_bytes(crafted_file(np.random.default_rng(0), channels=3, hidden_width=8, hidden_layers=2, width=9,
                                  height=7, kinds=(bitstream.LAPLACE,)))
    child = (f"import sys, time; time.sleep(0.5); from codec.cli import info_main; "
             f"sys.exit(info_main([{str(path)!r}]))")
    script = f'"{sys.executable}" -c "{child}" 2> "{tmp_path / "err.txt"}" | true; echo "${{PIPESTATUS[0]}}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "141", proc
    assert (tmp_path / "err.txt").read_text() == ""
