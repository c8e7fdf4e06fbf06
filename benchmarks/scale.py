"""Decoding below the stored size: each image encoded at the presets, its file decoded directly at
1/2, 1/4 and 1/8 of the stored size and compared with a Lanczos downscale of the original, beside
decoding at the stored size then resizing with Lanczos and beside point-sampling the network at the
smaller grid (the decoder's path before band-limited decodes); decode seconds of each.

    python -m benchmarks.scale ../shared/data/kodak [--limit N] [--presets low,medium,high,max]
        [--effort E] [--factors 2,4,8] [--keep DIR] [--out benchmarks/results/scale] [--figure]

--keep caches the encoded files (reused when present: the encode is the slow part). Writes
downscale.json (every measurement) and downscale.md (means per preset and factor) under --out;
--figure also writes thumbnail.png: the first image's medium file at 1/4, point-sampled, decoded
and Lanczos of the original, side by side (pixels doubled).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

PRESETS = ("low", "medium", "high", "max")


def _timed(fn, repeats: int = 3):
    """(result, best seconds of `repeats` calls)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def point_sampled(data: bytes, width: int, height: int) -> np.ndarray:
    """The network sampled at the output's pixel centres only (no filtering): the decoder's path
    before band-limited decodes, kept here to show what it cost."""
    import bitstream
    from codec.decoding.decoder import read_checked
    from codec.decoding.numpy_render import render_image

    header, symbols = read_checked(data)
    return render_image(header, bitstream.dequantize(header, symbols), height, width)


def measure(data: bytes, original: Image.Image, factors) -> list[dict]:
    import codec
    from codec.metrics import psnr

    full, full_s = _timed(lambda: codec.decode(data))
    rows = []
    for k in factors:
        size = (max(1, original.width // k), max(1, original.height // k))
        ref = np.asarray(original.resize(size, Image.Resampling.LANCZOS))
        direct, direct_s = _timed(lambda: np.asarray(codec.decode(data, size=size)))
        resized, resize_s = _timed(lambda: np.asarray(full.resize(size, Image.Resampling.LANCZOS)))
        point = point_sampled(data, *size)
        rows.append({"factor": k, "size": list(size), "direct_db": psnr(direct, ref),
                     "decode_then_lanczos_db": psnr(resized, ref), "point_db": psnr(point, ref),
                     "direct_s": direct_s, "full_decode_s": full_s, "decode_then_lanczos_s": full_s + resize_s})
    return rows


def thumbnail_figure(data: bytes, original: Image.Image, factor: int, path: Path) -> None:
    """Point-sampled, decoded and Lanczos-of-the-original thumbnails side by side, pixels doubled, labelled."""
    import codec
    from PIL import ImageDraw

    size = (original.width // factor, original.height // factor)
    panels = [("point-sampled (before)", Image.fromarray(point_sampled(data, *size))),
              ("inr-decode --scale 1/%d" % factor, codec.decode(data, size=size)),
              ("Lanczos of the original", original.resize(size, Image.Resampling.LANCZOS))]
    w, h = size[0] * 2, size[1] * 2
    sheet = Image.new("RGB", (3 * w + 20, h + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(panels):
        sheet.paste(im.convert("RGB").resize((w, h), Image.Resampling.NEAREST), (i * (w + 10), 18))
        draw.text((i * (w + 10) + 2, 3), label, fill="black")
    sheet.save(path)


def report(records: list[dict], meta: dict) -> str:
    lines = ["# Decoding below the stored size", "",
             f"`{meta['command']}` — commit `{meta['commit']}`, {meta['machine']}, {meta['date']}.", "",
             "PSNR (dB) against a Lanczos downscale of the original, mean over the images; seconds are the best "
             "of three decodes (`codec.decode`, default backend), mean over the images.", "",
             "| preset | bpp | scale | direct | decode then Lanczos | point-sampled (before) | direct − resized | "
             "direct s | full decode s | worst image: direct − resized |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for preset in meta["presets"]:
        recs = [r for r in records if r["preset"] == preset]
        if not recs:
            continue
        bpp = np.mean([r["bpp"] for r in recs])
        for k in meta["factors"]:
            rows = [m for r in recs for m in r["scales"] if m["factor"] == k]
            d = np.mean([m["direct_db"] for m in rows])
            z = np.mean([m["decode_then_lanczos_db"] for m in rows])
            p = np.mean([m["point_db"] for m in rows])
            worst = min(m["direct_db"] - m["decode_then_lanczos_db"] for m in rows)
            lines.append(f"| {preset} | {bpp:.3f} | 1/{k} | {d:.2f} | {z:.2f} | {p:.2f} | {d - z:+.3f} | "
                         f"{np.mean([m['direct_s'] for m in rows]):.3f} | "
                         f"{np.mean([m['full_decode_s'] for m in rows]):.3f} | {worst:+.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    import codec

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--effort", type=int, default=None)
    ap.add_argument("--factors", default="2,4,8")
    ap.add_argument("--keep", default=None, help="folder caching the encoded files")
    ap.add_argument("--out", default="benchmarks/results/scale")
    ap.add_argument("--figure", action="store_true", help="write thumbnail.png (see above)")
    args = ap.parse_args(argv)
    presets = [p for p in args.presets.split(",") if p]
    factors = [int(f) for f in args.factors.split(",")]
    images = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() == ".png")[:args.limit]
    keep = Path(args.keep) if args.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    records = []
    for path in images:
        original = Image.open(path).convert("RGB")
        for preset in presets:
            cached = keep / f"{path.stem}_{preset}_e{args.effort or 5}.inr" if keep else None
            if cached and cached.exists():
                data = cached.read_bytes()
            else:
                options = {"preset": preset} | ({"effort": args.effort} if args.effort else {})
                data = codec.encode(original, **options)
                if cached:
                    cached.write_bytes(data)
            rec = {"image": path.stem, "preset": preset, "bpp": 8 * len(data) / (original.width * original.height),
                   "scales": measure(data, original, factors)}
            records.append(rec)
            print(json.dumps(rec), flush=True)
            if args.figure and path == images[0] and preset == "medium":
                Path(args.out).mkdir(parents=True, exist_ok=True)
                thumbnail_figure(data, original, 4, Path(args.out) / "thumbnail.png")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {"command": "python -m benchmarks.scale " + " ".join(argv if argv is not None else sys.argv[1:]),
            "commit": commit or "unknown", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "presets": presets, "factors": factors}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "downscale.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    (out / "downscale.md").write_text(report(records, meta))
    print(report(records, meta))


if __name__ == "__main__":
    main()
