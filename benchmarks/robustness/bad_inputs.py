"""Every kind of bad input through the real console scripts: exit code and the stderr line.

    python -m benchmarks.robustness.bad_inputs [--out benchmarks/results/robustness/bad_inputs.md]

Prints a markdown table (input, command, exit code, stderr). Exit status 1 if any case gives an
unexpected exit code, more than one line on stderr, a traceback, or leaves a partial output file.
The input files are tiny and are made on the fly (tests/test_cli_bad_inputs.py uses the same makers).
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import bitstream

#: fast encoder options for the cases that succeed (sub-second on a CPU)
FAST = ["--steps", "5", "--bpp", "4", "-q"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int, *, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG that declares width x height but holds (almost) no data: a few hundred bytes on disk."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png16_rgb(width: int, height: int) -> bytes:
    """A 48-bit RGB PNG (Pillow opens it as 8-bit RGB without saying so)."""
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x * 3000, y * 5000, (x + y) * 1000], -1).astype(">u2")
    raw = b"".join(b"\x00" + arr[i].tobytes() for i in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def _gradient(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), (x + y) % 256], -1).astype(np.uint8)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def make_inputs(folder: Path) -> dict[str, Path]:
    """Write every test input into `folder`; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_gradient(32, 24))
    files: dict[str, bytes] = {
        "good.png": _save(rgb, "PNG"),
        "empty.png": b"",
        "notes.txt": b"this is not an image\n" * 10,
        "truncated.png": _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")[:400],
        "bomb.png": png_header_only(20000, 20000),  # 400 Mpx declared, 100 bytes on disk
        "bomb_warn.png": png_header_only(10000, 10000),  # 100 Mpx: over Pillow's MAX_IMAGE_PIXELS
        "large.png": png_header_only(8000, 8000),  # 64 Mpx: under Pillow's limit, over the encoder's
        "gray16.png": _save(Image.fromarray((np.arange(768, dtype=np.uint16).reshape(24, 32) * 80)), "PNG"),
        "rgb16.png": png16_rgb(32, 24),
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG"),
        "cmyk.tif": _save(rgb.convert("CMYK"), "TIFF"),
        "palette.png": _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"),
        "palette_transparent.png": _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", transparency=0),
        "rgba_transparent.png": _save(Image.fromarray(np.dstack([_gradient(32, 24), np.full((24, 32), 128, np.uint8)])), "PNG"),
        "rgba_opaque.png": _save(rgb.convert("RGBA"), "PNG"),
        "bilevel.png": _save(rgb.convert("1"), "PNG"),
        "one_pixel.png": _save(Image.fromarray(_gradient(1, 1)), "PNG"),
        "one_row.png": _save(Image.fromarray(_gradient(40, 1)), "PNG"),
        "one_column.png": _save(Image.fromarray(_gradient(1, 40)), "PNG"),
        "existing.inr": b"precious existing content\n",
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    (folder / "a_directory").mkdir(exist_ok=True)
    paths["a_directory"] = folder / "a_directory"
    paths["missing.png"] = folder / "missing.png"
    return paths


def make_inr_inputs(folder: Path) -> dict[str, Path]:
    """.inr inputs for the decoder: a good one, damaged ones and hostile ones with a valid CRC."""
    from benchmarks.robustness.fuzz_inr import crafted_file, fix_crc
    from bitstream import HISTOGRAM, LAPLACE, ZERO
    from bitstream.header import _FIXED, FIELDS

    rng = np.random.default_rng(3)
    good = crafted_file(rng, channels=3, hidden_width=12, hidden_layers=2, width=20, height=12,
                        kinds=(LAPLACE, HISTOGRAM, ZERO))

    def zero_file(**fixed) -> bytes:
        values = dict(width=20, height=12, channels=3, arch=1, hidden_width=4, hidden_layers=1, omega0=30.0, init_id=0)
        values.update(fixed)
        head = _FIXED.pack(*(values[f.name] for f in FIELDS))
        head += b"".join(struct.pack("<eB", 0.01, ZERO) for _ in range(2 * (values["hidden_layers"] + 1)))
        return fix_crc(b"\x89INR" + struct.pack("<BH", 1, len(head)) + head + struct.pack("<I", 0) + b"\0\0\0\0")

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    future = bytearray(good)
    future[4] = bitstream.VERSION + 1
    files = {
        "good.inr": good,
        "truncated.inr": good[: len(good) // 2],
        "magic_prefix.inr": good[:3],
        "bitflip.inr": bytes(flipped),
        "future_version.inr": fix_crc(bytes(future)),
        "gigantic_image.inr": zero_file(width=65535, height=65535, hidden_width=2),
        "huge_network.inr": zero_file(hidden_width=1024, hidden_layers=32),
        "bad_field.inr": zero_file(channels=7),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


@dataclass
class Case:
    label: str
    argv: list  # [script, args...]; "{name}" fields are paths of inputs, "{out}" a fresh output path
    expect: int
    output_must_not_exist: bool = True


ENCODE_CASES = [
    Case("missing file", ["inr-encode", "{missing.png}", "{out}"], 1),
    Case("a directory", ["inr-encode", "{a_directory}", "{out}"], 1),
    Case("zero-byte file", ["inr-encode", "{empty.png}", "{out}"], 1),
    Case("not an image", ["inr-encode", "{notes.txt}", "{out}"], 1),
    Case("truncated PNG", ["inr-encode", "{truncated.png}", "{out}"], 1),
    Case("decompression bomb (20000x20000 declared, 100 B)", ["inr-encode", "{bomb.png}", "{out}"], 1),
    Case("over Pillow's pixel limit (10000x10000)", ["inr-encode", "{bomb_warn.png}", "{out}"], 1),
    Case("very large (8000x8000)", ["inr-encode", "{large.png}", "{out}"], 1),
    Case("16-bit grayscale PNG", ["inr-encode", "{gray16.png}", "{out}"], 1),
    Case("16-bit grayscale PNG, --convert", ["inr-encode", "{gray16.png}", "{out}", "--convert", *FAST], 0, False),
    Case("48-bit RGB PNG", ["inr-encode", "{rgb16.png}", "{out}"], 1),
    Case("48-bit RGB PNG, --convert", ["inr-encode", "{rgb16.png}", "{out}", "--convert", *FAST], 0, False),
    Case("CMYK JPEG", ["inr-encode", "{cmyk.jpg}", "{out}"], 1),
    Case("CMYK JPEG, --convert", ["inr-encode", "{cmyk.jpg}", "{out}", "--convert", *FAST], 0, False),
    Case("CMYK TIFF", ["inr-encode", "{cmyk.tif}", "{out}"], 1),
    Case("palette PNG", ["inr-encode", "{palette.png}", "{out}", *FAST], 0, False),
    Case("palette PNG with transparency", ["inr-encode", "{palette_transparent.png}", "{out}"], 1),
    Case("RGBA with transparency", ["inr-encode", "{rgba_transparent.png}", "{out}"], 1),
    Case("RGBA with transparency, --convert", ["inr-encode", "{rgba_transparent.png}", "{out}", "--convert", *FAST], 0, False),
    Case("RGBA fully opaque", ["inr-encode", "{rgba_opaque.png}", "{out}", *FAST], 0, False),
    Case("1-bit image", ["inr-encode", "{bilevel.png}", "{out}", *FAST], 0, False),
    Case("1x1 image (no network fits 64 bpp)", ["inr-encode", "{one_pixel.png}", "{out}", "--steps", "20", "--bpp", "64"], 2),
    Case("40x1 image", ["inr-encode", "{one_row.png}", "{out}", "--steps", "20", "--bpp", "64", "-q"], 0, False),
    Case("1x40 image", ["inr-encode", "{one_column.png}", "{out}", "--steps", "20", "--bpp", "64", "-q"], 0, False),
    Case("output folder missing", ["inr-encode", "{good.png}", "{dir}/no/such/folder/x.inr"], 1),
    Case("output is a directory", ["inr-encode", "{good.png}", "{a_directory}"], 1),
    Case("output not writable (/proc)", ["inr-encode", "{good.png}", "/proc/inr-test.inr", *FAST], 1),
    Case("output equal to input", ["inr-encode", "{good.png}", "{good.png}"], 1, False),
    Case("output exists", ["inr-encode", "{good.png}", "{existing.inr}"], 1, False),
    Case("--steps 0", ["inr-encode", "{good.png}", "{out}", "--steps", "0"], 2),
    Case("--bpp -1", ["inr-encode", "{good.png}", "{out}", "--bpp", "-1"], 2),
    Case("--bpp nan", ["inr-encode", "{good.png}", "{out}", "--bpp", "nan"], 2),
    Case("--bpp 1000", ["inr-encode", "{good.png}", "{out}", "--bpp", "1000"], 2),
    Case("--sparsity 1", ["inr-encode", "{good.png}", "{out}", "--sparsity", "1"], 2),
    Case("--seed 2**70", ["inr-encode", "{good.png}", "{out}", "--seed", str(2**70)], 2),
    Case("--preset unknown", ["inr-encode", "{good.png}", "{out}", "--preset", "ultra"], 2),
]

DECODE_CASES = [
    Case("missing .inr", ["inr-decode", "{missing.inr}", "-o", "{out_png}"], 1),
    Case("a directory", ["inr-decode", "{a_directory}", "-o", "{out_png}"], 1),
    Case("zero-byte file", ["inr-decode", "{empty.png}", "-o", "{out_png}"], 1),
    Case("a PNG, not an .inr", ["inr-decode", "{good.png}", "-o", "{out_png}"], 1),
    Case("truncated .inr", ["inr-decode", "{truncated.inr}", "-o", "{out_png}"], 1),
    Case("first 3 bytes of an .inr", ["inr-decode", "{magic_prefix.inr}", "-o", "{out_png}"], 1),
    Case("one flipped bit", ["inr-decode", "{bitflip.inr}", "-o", "{out_png}"], 1),
    Case("future version (valid CRC)", ["inr-decode", "{future_version.inr}", "-o", "{out_png}"], 1),
    Case("field out of range (valid CRC)", ["inr-decode", "{bad_field.inr}", "-o", "{out_png}"], 1),
    Case("65535x65535 declared (valid CRC)", ["inr-decode", "{gigantic_image.inr}", "-o", "{out_png}"], 1),
    Case("1024x32 network (valid CRC)", ["inr-decode", "{huge_network.inr}", "-o", "{out_png}"], 1),
    Case("/dev/zero", ["inr-decode", "/dev/zero", "-o", "{out_png}"], 1),
    Case("--res 0", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--res", "0"], 2),
    Case("--res -5", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--res", "-5"], 2),
    Case("--res 1000000000", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--res", "1000000000"], 2),
    Case("--size 0x10", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--size", "0x10"], 2),
    Case("--size 10x-1", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--size", "10x-1"], 2),
    Case("--size big", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--size", "big"], 2),
    Case("--size 100000x100000", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--size", "100000x100000"], 2),
    Case("--scale 0", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--scale", "0"], 2),
    Case("--scale -2", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--scale", "-2"], 2),
    Case("--scale nan", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--scale", "nan"], 2),
    Case("--scale 1e308", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--scale", "1e308"], 2),
    Case("--res 5000 --max-pixels 1000", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--res", "5000", "--max-pixels", "1000"], 2),
    Case("--max-pixels 0", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--max-pixels", "0"], 2),
    Case("--res and --scale", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--res", "5", "--scale", "2"], 2),
    Case("unknown output extension", ["inr-decode", "{good.inr}", "-o", "{dir}/x.nope"], 2),
    Case("output exists", ["inr-decode", "{good.inr}", "-o", "{existing.inr}"], 1, False),
    Case("good file, --res 64", ["inr-decode", "{good.inr}", "-o", "{out_png}", "--res", "64"], 0, False),
    Case("inr-info on a flipped bit", ["inr-info", "{bitflip.inr}"], 1),
    Case("inr-info on a huge network", ["inr-info", "{huge_network.inr}"], 1),
]


def expand(argv: list, paths: dict, folder: Path, index: int) -> list[str]:
    fields = {k: str(v) for k, v in paths.items()}
    fields.update(out=str(folder / f"out{index}.inr"), out_png=str(folder / f"out{index}.png"), dir=str(folder))
    fields["missing.inr"] = str(folder / "missing.inr")
    out = []
    for a in argv:
        for k, v in fields.items():
            a = a.replace("{" + k + "}", v)
        out.append(a)
    return out


def _script(name: str) -> str:
    """The console script next to this Python (the venv's), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def run_cases(folder: Path) -> list[dict]:
    paths = make_inputs(folder)
    paths.update(make_inr_inputs(folder))
    rows = []
    for i, case in enumerate(ENCODE_CASES + DECODE_CASES):
        argv = expand(case.argv, paths, folder, i)
        existing = paths["existing.inr"].read_bytes()
        t0 = time.perf_counter()
        proc = subprocess.run([_script(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - t0
        err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        problems = []
        if proc.returncode != case.expect:
            problems.append(f"exit {proc.returncode}, expected {case.expect}")
        if case.expect != 0 and len(err_lines) != 1:
            problems.append(f"{len(err_lines)} stderr lines")
        if "Traceback" in proc.stderr:
            problems.append("traceback")
        outs = [p for p in (folder / f"out{i}.inr", folder / f"out{i}.png") if p.exists()]
        if case.output_must_not_exist and outs:
            problems.append(f"wrote {outs[0].name}")
        if paths["existing.inr"].read_bytes() != existing:
            problems.append("changed an existing file")
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        if leftovers:
            problems.append(f"left {leftovers}")
        shown = [Path(a).name if a.startswith(str(folder)) else a for a in argv]
        rows.append(dict(label=case.label, command=" ".join(shown), code=proc.returncode, expect=case.expect,
                         stderr=(err_lines[-1] if err_lines else "").replace(f"{folder}/", ""),
                         seconds=seconds, problems=problems))
    return rows


def table(rows: list[dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| input | command | exit | stderr | ok |", "|---|---|---|---|---|"]
    for r in rows:
        ok = "yes" if not r["problems"] else "NO: " + "; ".join(r["problems"])
        lines.append(f"| {cell(r['label'])} | `{cell(r['command'])}` | {r['code']} | {cell(r['stderr'])} | {ok} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.robustness.bad_inputs", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inr-bad-inputs-") as tmp:
        rows = run_cases(Path(tmp))
    text = table(rows)
    print(text)
    bad = [r for r in rows if r["problems"]]
    summary = f"\n{len(rows)} cases, {len(rows) - len(bad)} as expected, {len(bad)} not."
    print(summary)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n" + summary + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
