"""Per-image table of a benchmark run: our codec's points beside JPEG 4:2:0 at the same rate.

    python -m benchmarks.proxy_table benchmarks/results/kodak_limit6 [--codec inr] [--anchor jpeg420]
        [--extra OTHER_RUN ...]

For every image and operating point of `--codec`: the real bpp, the PSNR of the decoded file, the
anchor's PSNR at that bpp (interpolated linearly in bpp between the anchor's points on that
image; "n/a" outside its range), the encode seconds and the steps the encoder ran. Then the
BD-rate of the codec's mean curve (mean bpp and mean PSNR of the images, per operating point)
against the anchor's, as the benchmark's bd_rate.md computes it. `--extra` adds the codec's
operating points from other runs' folders (for example a rate measured at another commit); the
table names the commit of every run it uses.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def anchor_psnr_at(points: list[tuple[float, float]], bpp: float) -> float | None:
    """PSNR of the anchor's curve at `bpp`, or None outside its measured range."""
    pts = sorted(points)
    rates = np.array([p[0] for p in pts])
    if not pts or bpp < rates[0] or bpp > rates[-1]:
        return None
    return float(np.interp(bpp, rates, [p[1] for p in pts]))


def _mean_curve(records: list[dict]) -> tuple[list[float], list[float]]:
    """(mean bpp, mean PSNR) per operating point over the images, points in setting order."""
    by_setting: dict[float, list[dict]] = {}
    for rec in records:
        if "psnr" in rec:
            by_setting.setdefault(rec["setting"], []).append(rec)
    settings = sorted(by_setting)
    return ([float(np.mean([r["bpp"] for r in by_setting[s]])) for s in settings],
            [float(np.mean([r["psnr"] for r in by_setting[s]])) for s in settings])


def table(results: Path, codec: str = "inr", anchor: str = "jpeg420", extra: tuple[Path, ...] = ()) -> str:
    from .bdrate import BDError, bd_rate

    ours = json.loads((results / f"{codec}.json").read_text())
    runs = [(results, ours)] + [(d, json.loads((d / f"{codec}.json").read_text())) for d in extra]
    ours = {**ours, "per_image": [rec for _, doc in runs for rec in doc["per_image"]]}
    ref = json.loads((results / f"{anchor}.json").read_text())
    by_image: dict[str, list[tuple[float, float]]] = {}
    for rec in ref["per_image"]:
        if "bpp" in rec and "psnr" in rec:
            by_image.setdefault(rec["image"], []).append((rec["bpp"], rec["psnr"]))
    lines = [f"| image | target bpp | bpp | PSNR (dB) | {anchor} PSNR at that bpp | difference | encode s | steps |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for rec in sorted(ours["per_image"], key=lambda r: (r["image"], r["setting"])):
        if "psnr" not in rec:
            lines.append(f"| {rec['image']} | {rec['setting']} | error: {rec.get('error', '?')} | | | | | |")
            continue
        jp = anchor_psnr_at(by_image.get(rec["image"], []), rec["bpp"])
        enc = rec.get("encoder") or {}
        diff = "n/a" if jp is None else f"{rec['psnr'] - jp:+.2f}"
        lines.append(f"| {rec['image']} | {rec['setting']} | {rec['bpp']:.4f} | {rec['psnr']:.2f} | "
                     f"{'n/a' if jp is None else f'{jp:.2f}'} | {diff} | {rec['encoding_time']:.1f} | {enc.get('steps', '?')} |")
    bpp, psnr = _mean_curve(ours["per_image"])
    ref_bpp, ref_psnr = _mean_curve(ref["per_image"])  # the anchor's results arrays, per setting
    try:
        bd = f"{100 * bd_rate(ref_bpp, ref_psnr, bpp, psnr):+.1f} %"
    except BDError as exc:
        bd = f"n/a ({exc})"
    lines += ["", f"Mean curve of {codec}: " + ", ".join(f"{b:.3f} bpp {p:.2f} dB" for b, p in zip(bpp, psnr))
              + f"; BD-rate against {anchor}: {bd}.",
              "Runs: " + "; ".join(f"{d.name}: commit {doc.get('meta', {}).get('git', {}).get('commit', '?')[:7]}"
                                   f"{' (dirty)' if doc.get('meta', {}).get('git', {}).get('dirty') else ''}"
                                   for d, doc in runs)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.proxy_table", description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("--codec", default="inr")
    p.add_argument("--anchor", default="jpeg420")
    p.add_argument("--extra", type=Path, action="append", default=[], help="another run's folder: more points of --codec")
    args = p.parse_args(argv)
    print(table(args.results, args.codec, args.anchor, tuple(args.extra)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
