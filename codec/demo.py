"""Encode a bundled photo with the codec's defaults and compare it with JPEG, WebP and AVIF of the same size.

    python -m codec.demo [--time-budget S] [--preset NAME] [--out demo.png] [--force]

Prints one row per codec (bytes, bits per pixel, PSNR of the decoded image against the original,
RGB, 8 bits) and writes a picture of the same crop of each, side by side: original | ours | JPEG |
WebP | AVIF. Each baseline's quality setting is searched by bisection for the largest file that is
not larger than ours. Uses the public API only (codec.encode_with_stats, codec.decode), Pillow and
numpy.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

SAMPLE = "kodim23.png"  #: Kodak image 23 (768x512), see codec/samples/SOURCES.md
DEFAULT_TIME_BUDGET = 80.0  #: seconds for our encode: the whole demo stays within 2 minutes on 2 cores
DEFAULT_CROP = (400, 120, 192)  #: (left, top, side) of the crop shown: the red macaw's eye and beak
ZOOM = 2  #: the crops are enlarged by this factor (nearest neighbour) so the artefacts show


@dataclass(frozen=True)
class Baseline:
    """A codec Pillow writes, with the quality range searched and the fixed options."""

    name: str
    format: str
    lowest: int
    highest: int
    options: dict


BASELINES = (
    Baseline("JPEG", "JPEG", 1, 95, {"subsampling": 2, "optimize": True}),  # 4:2:0, as the benchmarks
    Baseline("WebP", "WEBP", 0, 100, {"method": 6}),
    Baseline("AVIF", "AVIF", 0, 100, {"subsampling": "4:4:4", "speed": 6}),
)


@dataclass(frozen=True)
class Row:
    """One line of the table: a codec's file and its decoded image."""

    codec: str
    bytes: int
    bpp: float
    psnr: float
    setting: str
    decoded: np.ndarray | None = None  #: (H, W, 3) uint8
    note: str = ""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (8-bit peak, all channels)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def available(baseline: Baseline) -> bool:
    """Whether this Pillow can write the baseline's format."""
    return baseline.format != "AVIF" or bool(features.check("avif"))


def encode_baseline(image: Image.Image, baseline: Baseline, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=baseline.format, quality=quality, **baseline.options)
    return buffer.getvalue()


def largest_within(encode: Callable[[int], bytes], lowest: int, highest: int, max_bytes: int) -> tuple[int, bytes]:
    """(quality, file) of the highest quality in [lowest, highest] whose file is at most max_bytes, by
    bisection (file size grows with quality); (lowest, its file) when even that is larger."""
    low_data = encode(lowest)
    if len(low_data) > max_bytes:
        return lowest, low_data
    best = (lowest, low_data)
    lo, hi = lowest + 1, highest
    while lo <= hi:
        mid = (lo + hi) // 2
        data = encode(mid)
        if len(data) <= max_bytes:
            best, lo = (mid, data), mid + 1
        else:
            hi = mid - 1
    return best


def baseline_rows(original: np.ndarray, max_bytes: int) -> tuple[list[Row], list[str]]:
    """A row per baseline at most `max_bytes` long (as close as bisection on its quality gets), and a
    note per baseline this Pillow cannot write."""
    image = Image.fromarray(original, "RGB")
    pixels = original.shape[0] * original.shape[1]
    rows, notes = [], []
    for baseline in BASELINES:
        if not available(baseline):
            notes.append(f"{baseline.name}: skipped, this Pillow has no {baseline.format} encoder")
            continue
        quality, data = largest_within(lambda q: encode_baseline(image, baseline, q), baseline.lowest,
                                       baseline.highest, max_bytes)
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        note = "" if len(data) <= max_bytes else "its smallest file is larger than ours"
        rows.append(Row(baseline.name, len(data), 8 * len(data) / pixels, psnr(decoded, original),
                        f"quality {quality}", decoded, note))
    return rows, notes


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def crop_box(shape: tuple, crop: tuple[int, int, int] = DEFAULT_CROP) -> tuple[int, int, int]:
    """(left, top, side) of `crop` moved and shrunk to fit an image of `shape` (H, W, ...)."""
    height, width = shape[:2]
    side = max(1, min(crop[2], width, height))
    return min(max(0, crop[0]), width - side), min(max(0, crop[1]), height - side), side


def side_by_side(panels: list[tuple[str, np.ndarray]], crop: tuple[int, int, int] = DEFAULT_CROP,
                 zoom: int = ZOOM) -> Image.Image:
    """The same square crop (left, top, side; moved and shrunk to fit the image) of each (label, image),
    enlarged `zoom` times, side by side, each with its label underneath."""
    left, top, side = crop_box(panels[0][1].shape, crop)
    tile = side * zoom
    gap, text = 4, 18
    band = 2 * text + 8
    sheet = Image.new("RGB", (len(panels) * tile + (len(panels) - 1) * gap, tile + band), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(14)
    for i, (label, pixels) in enumerate(panels):
        piece = Image.fromarray(np.ascontiguousarray(pixels[top:top + side, left:left + side]), "RGB")
        x = i * (tile + gap)
        sheet.paste(piece.resize((tile, tile), Image.Resampling.NEAREST), (x, 0))
        for j, line in enumerate(label.split("\n")[:2]):
            draw.text((x + 4, tile + 4 + j * text), line, fill="black", font=font)
    return sheet


def compare(original: np.ndarray, ours: np.ndarray, our_bytes: int, *, setting: str = "",
            crop: tuple[int, int, int] = DEFAULT_CROP, zoom: int = ZOOM) -> tuple[list[Row], list[str], Image.Image]:
    """(rows: ours then each baseline at most our size, notes on skipped baselines, the side-by-side
    picture) for an (H, W, 3) uint8 original, our decoded image of it and our file's length."""
    pixels = original.shape[0] * original.shape[1]
    rows = [Row("inr (ours)", our_bytes, 8 * our_bytes / pixels, psnr(ours, original), setting, ours)]
    baselines, notes = baseline_rows(original, our_bytes)
    rows += baselines
    panels = [("original", original)] + [
        (f"{row.codec}\n{row.bytes:,} B, {row.psnr:.2f} dB", row.decoded) for row in rows]
    return rows, notes, side_by_side(panels, crop, zoom)


def format_table(rows: list[Row]) -> str:
    lines = [f"{'codec':<12} {'bytes':>8} {'bpp':>7} {'PSNR':>9}  setting"]
    for row in rows:
        note = f"  ({row.note})" if row.note else ""
        lines.append(f"{row.codec:<12} {row.bytes:>8,} {row.bpp:>7.4f} {row.psnr:>6.2f} dB  {row.setting}{note}")
    return "\n".join(lines)


def write_png(image: Image.Image, path: Path, *, force: bool) -> None:
    """Write `image` to `path` as PNG atomically: a temporary file in the same folder, then renamed (or
    linked, without `force`, so an existing file is never replaced). FileExistsError without `force`."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG")
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists, atomically
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="S",
                        help=f"seconds our encode may take; its steps are planned from it (default {DEFAULT_TIME_BUDGET:g})")
    parser.add_argument("--steps", type=int, default=None, help="fixed optimisation steps instead of the time budget")
    parser.add_argument("--preset", choices=["low", "medium", "high", "max"], default="medium",
                        help="our rate target: low 0.15, medium 0.3 (default), high 0.6, max 1.2 bpp")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where to fit (default cpu)")
    parser.add_argument("--image", default=None, help="encode this image instead of the bundled photo")
    parser.add_argument("--out", default="demo.png", help="the side-by-side picture (default demo.png)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    args = parser.parse_args(argv)
    if args.time_budget <= 0 or (args.steps is not None and args.steps < 1):
        parser.error("--time-budget and --steps must be positive")
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"codec.demo: {out} exists; give --force to overwrite it", file=sys.stderr)
        return 1

    from codec import decode, encode_with_stats  # here, so --help works without torch

    source = args.image or str(files("codec") / "samples" / SAMPLE)
    original = np.asarray(Image.open(source).convert("RGB"))
    height, width = original.shape[:2]
    t0 = time.monotonic()
    result = encode_with_stats(source, preset=args.preset, device=args.device, progress=True,
                               steps=args.steps, time_budget=None if args.steps else args.time_budget)
    t1 = time.monotonic()
    ours = np.asarray(decode(result.data, device=args.device).convert("RGB"))
    t2 = time.monotonic()
    family = {"latent": "latent grids", "siren": "SIREN", "poly": "Poly-INR"}.get(result.arch, result.arch)
    rows, notes, picture = compare(original, ours, len(result.data),
                                   setting=f"preset {args.preset}, {family}, {result.steps} steps")
    t3 = time.monotonic()
    print(f"\n{Path(source).name}, {width}x{height}: our encode {t1 - t0:.1f} s ({result.device}), "
          f"decode {t2 - t1:.2f} s; baselines searched in {t3 - t2:.1f} s")
    print(format_table(rows))
    for note in notes:
        print(note)
    if result.time_capped:
        print(f"note: our encode reached its {args.time_budget:g} s budget after {result.steps} steps, before the steps it "
              "had planned: this machine is slower or busier than the codec's cost model, so our file is worse than "
              "usual (a quiet machine, or a larger --time-budget, does better)")
    try:
        write_png(picture, out, force=args.force)
    except FileExistsError:
        print(f"codec.demo: {out} appeared meanwhile; give --force to overwrite it", file=sys.stderr)
        return 1
    left, top, side = crop_box(original.shape)
    print(f"picture: {out} ({' | '.join(['original'] + [r.codec for r in rows])}; "
          f"the {side}x{side} crop at ({left}, {top}), enlarged {ZOOM}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
