"""Issue 28, item 3: `-` is standard input / output for inr-encode, inr-decode and inr-info, through real pipes.

The output is written in one piece after the work succeeded; a terminal as binary stdout is refused with one
line; a pipe closed before the output is written gives one line and exit 141; a failure writes nothing.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bitstream
from benchmarks.robustness.fuzz_inr import crafted_file
from codec.decoding import decode_array

BIN = Path(sys.executable).parent


def _script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return str(path)


@pytest.fixture(scope="module")
def inr(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipes") / "a.inr"
    path.write_bytes(crafted_file(np.random.default_rng(0), channels=3, hidden_width=8, hidden_layers=2, width=9,
                                  height=7, kinds=(bitstream.LAPLACE,)))
    return path


def _run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, timeout=300, **kw)


def test_decode_from_stdin_to_stdout(inr):
    proc = _run([_script("inr-decode"), "-", "-o", "-"], input=inr.read_bytes())
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert proc.stdout.startswith(b"\x89PNG")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(proc.stdout))), decode_array(inr.read_bytes()))


def test_decode_stdin_needs_an_output(inr):
    proc = _run([_script("inr-decode"), "-"], input=inr.read_bytes())
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode() == "inr-decode: error: reading from standard input: give -o FILE, or -o - for standard output\n"


def test_info_from_stdin_matches_info_of_the_file(inr):
    from_file = json.loads(_run([_script("inr-info"), str(inr)]).stdout)
    proc = _run([_script("inr-info"), "-"], input=inr.read_bytes())
    assert proc.returncode == 0, proc.stderr
    from_pipe = json.loads(proc.stdout)
    assert from_pipe.pop("file") == "-" and from_file.pop("file") == str(inr)
    assert from_pipe == from_file


@pytest.mark.parametrize("extra", [b"\0", b"12345678"])
def test_stdin_with_bytes_after_the_checksum_is_refused(inr, extra):
    for tool, args in (("inr-info", ["-"]), ("inr-decode", ["-", "-o", "-"])):
        proc = _run([_script(tool), *args], input=inr.read_bytes() + extra)
        assert proc.returncode == 1 and proc.stdout == b""
        assert proc.stderr.decode() == f"{tool}: error: file has {len(extra)} unexpected bytes after the checksum\n"


def test_a_failed_decode_writes_nothing_to_stdout(inr):
    bad = bytearray(inr.read_bytes())
    bad[-1] ^= 1
    proc = _run([_script("inr-decode"), "-", "-o", "-"], input=bytes(bad))
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.decode() == "inr-decode: error: checksum mismatch: the file is corrupted\n"


def test_encode_to_a_pipe_into_decode_from_a_pipe(tmp_path):
    """The issue's example: inr-encode photo.png - | inr-decode - -o out.png (tee keeps the file to compare)."""
    Image.fromarray((np.indices((24, 32)).sum(0) * 5 % 256).astype(np.uint8)).convert("RGB").save(tmp_path / "p.png")
    line = (f'"{_script("inr-encode")}" p.png - --steps 3 -q | tee a.inr | "{_script("inr-decode")}" - -o out.png; '
            'echo "${PIPESTATUS[@]}"')
    proc = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.stdout.split() == ["0", "0", "0"], proc.stderr
    assert proc.stderr == ""
    data = (tmp_path / "a.inr").read_bytes()
    assert bitstream.read_header(data).width == 32
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), decode_array(data))
    assert not (tmp_path / "-").exists()  # no file named '-'


def test_encode_reads_stdin(tmp_path):
    proc = _run([_script("inr-encode"), "-", str(tmp_path / "x.inr"), "--steps", "2", "-q"], input=b"")
    assert proc.returncode == 1 and proc.stderr.decode() == "inr-encode: error: -: standard input is empty\n"
    assert not (tmp_path / "x.inr").exists()
    proc = _run([_script("inr-encode"), "p.png", "-", "--json"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"--json prints on stdout" in proc.stderr and proc.stderr.count(b"\n") == 1


@pytest.mark.parametrize("tool,args", [("inr-decode", ["IN", "-o", "-"]), ("inr-encode", ["IMG", "-", "--steps", "2"])])
def test_a_terminal_as_binary_stdout_is_refused(inr, tmp_path, tool, args):
    import pty

    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    args = [str(inr) if a == "IN" else str(tmp_path / "img.png") if a == "IMG" else a for a in args]
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([_script(tool), *args], stdout=slave, stderr=subprocess.PIPE, timeout=300)
    finally:
        os.close(slave)
        os.close(master)
    what = "a PNG image" if tool == "inr-decode" else "an .inr file"
    assert proc.returncode == 2
    assert proc.stderr.decode() == (f"{tool}: error: refusing to write {what} to a terminal: redirect stdout to a file "
                                    "or a pipe, or give a file name instead of -\n")


def test_a_closed_pipe_gives_one_line_and_141(inr, tmp_path):
    """The reader is gone before the output is written: one line on stderr, exit 141, no traceback."""
    child = (f"import sys, time; time.sleep(0.5); from codec.cli import decode_main; "
             f"sys.exit(decode_main([{str(inr)!r}, '-o', '-']))")
    line = f'"{sys.executable}" -c "{child}" 2> "{tmp_path / "err.txt"}" | true; echo "${{PIPESTATUS[0]}}"'
    proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "141", proc
    err = (tmp_path / "err.txt").read_text()
    assert err.startswith("inr-decode: error: stdout was closed before the ") and err.endswith(
        "-byte output was written\n") and err.count("\n") == 1, err
