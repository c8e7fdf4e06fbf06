"""Ablation of the encoder's techniques: each variant's RD curve and BD-rate.

    python -m benchmarks.probes.ablation ../shared/data/kodak --limit 2 --bpps 0.3,1.2 --variants full,...

Every variant encodes the same images at the same target rates with the real codec (rate from
the real bytes, PSNR from the decoded file); BD-rate is against JPEG 4:2:0 on the same images and
against the full encoder. By default images are full size and each encode gets the default CPU
settings (steps planned from the 150 s budget), so variants compare at equal encode time; give
--steps to compare at equal steps, --downscale to reduce images (a guide, never a decision).
Results: <out>/ablation.json and <out>/ablation.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

import bitstream
from codec.config import EncoderConfig, MlpSettings
from codec.encoding import encode_pixels

from ..baselines import JPEG420
from ..bdrate import BDError, bd_rate
from ..dataset import dataset_name, load_images
from ..metrics import as_rgb_array, psnr

VARIANTS = {
    "full": {},
    "per-tensor range-based steps (bit-width search)": {"quant_scheme": "range"},
    "no QAT (post-training quantization)": {"qat_fraction": 0.0},
    "QAT on 5% of the steps": {"qat_fraction": 0.05},
    "Laplace model only (no zero-flag / histogram)": {"entropy_models": (bitstream.ZERO, bitstream.LAPLACE)},
    "pruning 20% + fine-tune": {"sparsity": 0.2},
    "fitting learning rate 2e-3 (default 1e-3)": {"lr": 2e-3},
    "fitting learning rate 5e-4 (default 1e-3)": {"lr": 5e-4},
    # full-size variants of the fit (issue 8); "full" is the encoder with warm-up and width-scaled rates
    "no warm-up, no width scaling (the fit before the fix)": {"warmup_fraction": 0.0, "lr_scaling": "none"},
    "fitting learning rate 1e-3": {"lr": 1e-3},
    "fitting learning rate 4e-3": {"lr": 4e-3},
    "fitting learning rate 3e-3 (with the divergence guard)": {"lr": 3e-3},
    "CPU batches of 4096 pixels (more, smaller steps)": {"batch_pixels": 4096},
    "CPU batches of 65536 pixels (fewer, larger steps)": {"batch_pixels": 65536},
    "QAT on 20% of the steps": {"qat_fraction": 0.2},
    "at most 4 layers (cheaper steps, more of them)": {"max_layers": 4},
    "network for half the parameter budget (finer quantization, more steps)": {"size_factor": 0.5},
    # issue 10: Reptile-trained starting weights (codec/encoding/train_init.py, codec/encoding/inits)
    "meta-learned init (codec/inits)": {"init": "meta"},
    "random SIREN init": {"init": "random"},
    # issue 8, item 3: the sine layers' frequency factor at full size (default 30, the SIREN paper's)
    "omega0 20 (default 30)": {"omega0": 20.0},
    "omega0 40 (default 30)": {"omega0": 40.0},
    # issue 8, item 3: the Poly-INR family (architecture 2) at its own learning rate (1e-2)
    "Poly-INR (architecture 2, --arch poly)": {"arch": "poly"},
}


def with_overrides(cfg: EncoderConfig, overrides: dict) -> EncoderConfig:
    """cfg with a variant's settings: MlpSettings' fields in its `mlp`, the others its own."""
    mlp_names = {f.name for f in fields(MlpSettings)}
    mlp = replace(cfg.mlp, **{k: v for k, v in overrides.items() if k in mlp_names})
    return replace(cfg, mlp=mlp, **{k: v for k, v in overrides.items() if k not in mlp_names})


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _curve(points: list[dict]) -> tuple[list[float], list[float]]:
    return [p["bpp"] for p in points], [p["psnr"] for p in points]


def _bd(anchor, test) -> float | None:
    try:
        return 100 * bd_rate(*anchor, *test)
    except BDError:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probes.ablation", description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", default=str(Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak"))
    p.add_argument("--limit", type=int, default=2)
    p.add_argument("--downscale", type=float, default=None, help="reduce images by this factor (default: full size)")
    p.add_argument("--bpps", default="0.15,0.3,0.6,1.2")
    p.add_argument("--steps", type=int, default=None, help="steps per encode (default: the codec's CPU plan from its time budget)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    p.add_argument("--variants", default=None, help="'|'-separated subset of variant names (default: all; 'full' is always run)")
    p.add_argument("--full-from", default=None, metavar="ABLATION_JSON",
                   help="take the 'full' rows from an earlier ablation.json of the same images, rates and steps instead "
                        "of re-encoding them (only valid when the default encoder's bytes have not changed since)")
    args = p.parse_args(argv)
    bpps = [float(b) for b in args.bpps.split(",")]
    images = load_images(args.dataset, limit=args.limit, downscale=args.downscale)
    name = dataset_name(args.dataset, args.limit, args.downscale)
    out = Path(args.out or Path(__file__).resolve().parents[1] / "results" / f"ablation_{name}")
    out.mkdir(parents=True, exist_ok=True)
    arrays = [as_rgb_array(im.image()) for im in images]

    jpeg = JPEG420()
    jpeg_points = []
    for q in jpeg.default_settings:
        rates, quals = [], []
        for arr, im in zip(arrays, images):
            data = jpeg.encode(im.image(), q)
            rates.append(8 * len(data) / (arr.shape[0] * arr.shape[1]))
            quals.append(psnr(arr, as_rgb_array(jpeg.decode(data))))
        jpeg_points.append({"quality": q, "bpp": float(np.mean(rates)), "psnr": float(np.mean(quals))})

    chosen = VARIANTS if args.variants is None else {k: VARIANTS[k] for k in args.variants.split("|")}
    results, reused = {}, None
    if args.full_from is not None:
        earlier = json.loads(Path(args.full_from).read_text())
        same = (earlier["meta"]["images"] == [im.describe() for im in images] and earlier["meta"]["steps"] == args.steps
                and earlier["meta"]["target_bpps"] == bpps)
        if not same:
            p.error(f"{args.full_from} is of other images, rates or steps")
        results["full"] = next(row["points"] for row in earlier["variants"] if row["variant"] == "full")
        reused = {"file": args.full_from, "commit": earlier["meta"]["commit"], "date": earlier["meta"]["date"]}
        chosen = {k: v for k, v in chosen.items() if k != "full"}
    elif "full" not in chosen:
        chosen = {"full": {}, **chosen}
    for variant, overrides in chosen.items():
        points = []
        for bpp in bpps:
            rates, quals, secs, per_image = [], [], [], []
            for arr, im in zip(arrays, images):
                cfg = with_overrides(EncoderConfig(bpp=bpp, steps=args.steps, device=args.device, arch="siren"), overrides)
                t0 = time.monotonic()
                res = encode_pixels(arr, cfg)
                secs.append(time.monotonic() - t0)
                rates.append(res.bpp)
                quals.append(res.psnr)
                per_image.append({"image": im.name, "bpp": res.bpp, "psnr": res.psnr, "seconds": secs[-1],
                                  "steps": res.steps, "fit_attempts": res.fit_attempts, "time_capped": res.time_capped})
            points.append({"target_bpp": bpp, "bpp": float(np.mean(rates)), "psnr": float(np.mean(quals)),
                           "encode_seconds": float(np.mean(secs)), "per_image": per_image})
            print(f"{variant:45s} {bpp:5.2f} bpp -> {points[-1]['bpp']:.3f} bpp {points[-1]['psnr']:.2f} dB",
                  file=sys.stderr, flush=True)
        results[variant] = points

    full = _curve(results["full"])
    jpeg_curve = _curve(jpeg_points)
    rows = []
    for variant, points in results.items():
        rows.append({"variant": variant, "bd_rate_vs_jpeg420": _bd(jpeg_curve, _curve(points)),
                     "bd_rate_vs_full": _bd(full, _curve(points)), "points": points})
    meta = {"command": " ".join([sys.executable, "-m", "benchmarks.probes.ablation", *(argv or sys.argv[1:])]),
            "commit": _commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": args.device, "torch": torch.__version__, "platform": platform.platform(),
            "dataset": name, "images": [im.describe() for im in images], "steps": args.steps, "target_bpps": bpps,
            "full_reused_from": reused}
    (out / "ablation.json").write_text(json.dumps({"meta": meta, "jpeg420": jpeg_points, "variants": rows}, indent=2))

    def fmt(v):
        return "n/a" if v is None else f"{v:+.1f} %"

    steps_text = f"{args.steps} steps" if args.steps else "default CPU plan (150 s budget)"
    lines = [f"# Ablation on {name} ({len(images)} images, {steps_text}, {args.device})", "",
             f"Command: `{meta['command']}`  ", f"Commit: `{meta['commit']}`, date {meta['date']}, torch {meta['torch']}.", "",
             *([f"The 'full' rows are reused from `{reused['file']}` (commit `{reused['commit']}`, {reused['date']}).", ""]
               if reused else []),
             "BD-rate (PCHIP, overlapping PSNR range; negative is better) against JPEG 4:2:0 on the same images, "
             "and against the full encoder.", "",
             "| variant | BD-rate vs JPEG 4:2:0 | BD-rate vs full | " + " | ".join(f"{b} bpp target" for b in bpps) + " |",
             "|---|---:|---:|" + "---|" * len(bpps)]
    for row in rows:
        cells = " | ".join(f"{p['bpp']:.3f} bpp, {p['psnr']:.2f} dB" for p in row["points"])
        lines.append(f"| {row['variant']} | {fmt(row['bd_rate_vs_jpeg420'])} | {fmt(row['bd_rate_vs_full'])} | {cells} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
