"""GPU checks of the runbook (benchmarks/gpu_runbook.sh), written to one JSON file.

1. The device and library versions.
2. Single-image encodes of a full-size image on CUDA (default steps) at two rates, in float32 and
   with TF32 matrix products: seconds, steps per second, bytes, PSNR of the decoded file; with
   `--single-batched`, also single encodes from random pixel batches (batch size and steps given);
   with `--single-stacked`, the same through `encode_many` with one image (a loop with no per-step
   host reads, to measure what the single encoder's per-step loss read costs on a GPU).
3. The same files decoded on the CPU (torch and numpy) and on CUDA: how many pixel values differ,
   and by how much; the CUDA decode time at 3840 px.
4. The time of one stacked step (codec.stacked) of each curve rate's network with the Kodak group
   size, from which `--curve-seconds` (or what is left until `--curve-deadline`) is turned into a step count for the curve (written as
   ``curve.steps``; ``curve.tf32`` says whether TF32 kept quality within 0.1 dB).

    python -m benchmarks.probes.gpu_check --image ../shared/data/kodak/kodim23.png --out gpu_check.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from codec.config import EncoderConfig
from codec.decoding.decoder import decode_array
from codec.encoding import encode_pixels
from codec.encoding.mlp import plan_encode
from codec.imageio import load_pixels
from codec.metrics import psnr
from codec.families.siren.model import Siren
from codec.encoding.stacked import StackedSiren, encode_many, fit_stacked, group_size
from codec.encoding.fitting import Phase
from codec.progress import Progress

TF32_TOLERANCE_DB = 0.1


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn):
    _sync()
    t0 = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - t0


def _decode_difference(data: bytes, pixels: np.ndarray, device: str) -> dict:
    """Decodes of one file on the CPU (torch, numpy) and CUDA: differing values and PSNR of each."""
    cpu = decode_array(data, device="cpu", backend="torch")
    numpy_out = decode_array(data, backend="numpy")
    cuda, seconds = _timed(lambda: decode_array(data, device=device, backend="torch"))
    out = {"values": int(cpu.size), "cuda_decode_seconds": seconds,
           "psnr": {"cpu": psnr(cpu, pixels), "numpy": psnr(numpy_out, pixels), "cuda": psnr(cuda, pixels)}}
    for name, (a, b) in {"cuda_vs_cpu": (cpu, cuda), "numpy_vs_cpu": (cpu, numpy_out), "cuda_vs_numpy": (numpy_out, cuda)}.items():
        diff = np.abs(a.astype(int) - b.astype(int))
        out[name] = {"values_differing": int((diff > 0).sum()), "share": float((diff > 0).mean()), "max_abs": int(diff.max())}
    big, seconds = _timed(lambda: decode_array(data, res=3840, device=device, backend="torch"))
    out["cuda_decode_3840_seconds"] = seconds
    out["cuda_decode_3840_shape"] = list(big.shape)
    return out


def _encode_row(encode, **settings) -> tuple:
    """Run and time one encode; (result, its JSON row: settings, seconds, steps, size, quality), row printed."""
    result, seconds = _timed(encode)
    row = {**settings, "seconds": seconds, "steps": result.steps, "steps_per_second": result.steps / seconds,
           "bytes": result.bytes, "bpp": result.bpp, "psnr": result.psnr,
           "network": [result.hidden_width, result.hidden_layers], "fit_attempts": result.fit_attempts}
    print(json.dumps(row), flush=True)
    return result, row


def single_encodes(pixels: np.ndarray, bpps: list[float], device: str, steps: int | None) -> tuple[list[dict], dict]:
    rows, files = [], {}
    for bpp in bpps:
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            result, row = _encode_row(lambda: encode_pixels(pixels, EncoderConfig(bpp=bpp, device=device, steps=steps, arch="siren")),
                                      bpp_target=bpp, tf32=tf32)
            rows.append(row)
            if not tf32:
                files[bpp] = result.data
    torch.backends.cuda.matmul.allow_tf32 = False
    return rows, files


def batched_single_encodes(pixels: np.ndarray, bpps: list[float], variants: list[tuple[int, int]], device: str,
                           *, tf32: bool, stacked: bool = False) -> list[dict]:
    """Single encodes with random pixel batches instead of whole images: (batch pixels, steps) each
    (batch 0: whole images). `stacked`: through codec.stacked.encode_many with this one image, whose
    loop never reads the loss back to the host (the single encoder's does, every step)."""
    rows = []
    torch.backends.cuda.matmul.allow_tf32 = tf32
    for bpp in bpps:
        for batch, steps in variants:
            cfg = EncoderConfig(bpp=bpp, device=device, steps=steps, batch_pixels=batch or None, arch="siren")
            encode = (lambda: encode_many([pixels], cfg)[0]) if stacked else (lambda: encode_pixels(pixels, cfg))
            rows.append(_encode_row(encode, bpp_target=bpp, tf32=tf32, batch_pixels=batch, stacked=stacked)[1])
    torch.backends.cuda.matmul.allow_tf32 = False
    return rows


def stacked_step_seconds(shape: tuple, bpps: list[float], images: int, device: str, *, tf32: bool,
                         batch_pixels: int | None = None) -> dict:
    """Seconds of one stacked fitting step per rate, for `images` images of `shape` (H, W, C).

    The difference of a 25-step and a 5-step phase over 20, so the start-up and the whole-image
    evaluations of the first step are not counted.
    """
    torch.backends.cuda.matmul.allow_tf32 = tf32
    out = {}
    for bpp in bpps:
        plan = plan_encode(shape, EncoderConfig(bpp=bpp, steps=2000, device=device, batch_pixels=batch_pixels, arch="siren"),
                           torch.device(device))
        _, _, channels, width, layers, omega0 = plan.dims
        pixels = shape[0] * shape[1]
        group = group_size(plan, images)
        models = [Siren(channels=channels, hidden_width=width, hidden_layers=layers, omega0=omega0).to(device) for _ in range(group)]
        stack = StackedSiren(models)
        coords = torch.rand(group, pixels, 2, device=device) * 2 - 1
        targets = torch.rand(group, pixels, channels, device=device) * 2 - 1
        generator = torch.Generator(device=device).manual_seed(0)

        def run(steps):
            fit_stacked(stack, coords, targets, Phase("time", steps, 1e-4), progress=Progress(enabled=False),
                        batch_pixels=plan.batch_pixels, generator=generator)

        run(2)  # warm-up
        _, short = _timed(lambda: run(5))
        _, long = _timed(lambda: run(25))
        step = max(1e-6, (long - short) / 20)
        out[str(bpp)] = {"network": [width, layers], "group": group, "batch_pixels": min(pixels, plan.batch_pixels),
                         "step_seconds": step, "image_step_seconds": step / group,
                         "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None}
        print(json.dumps({bpp: out[str(bpp)]}), flush=True)
        del stack, coords, targets, models
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", required=True, help="a full-size image (e.g. kodim23.png)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--single-bpps", default="0.3,0.75", help="rates of the single-image encodes")
    p.add_argument("--curve-bpps", default="0.1,0.25,0.5,0.75,1.2", help="rates of the Kodak curve")
    p.add_argument("--curve-images", type=int, default=24)
    p.add_argument("--curve-seconds", type=float, default=300.0, help="seconds of stacked fitting the curve may take")
    p.add_argument("--curve-deadline", type=float, default=None,
                   help="instead of --curve-seconds: a time.time() by which the curve's fitting must end")
    p.add_argument("--curve-share", type=float, default=1.0,
                   help="plan the steps to fill this share of the curve's seconds (the step timing leaves out "
                        "evaluations, quantization-aware steps, finishing and single re-encodes)")
    p.add_argument("--device", default="cuda", help="cuda; cpu only to try the script out (with --single-steps)")
    p.add_argument("--single-steps", type=int, default=None, help="steps of the single encodes (default: the codec's)")
    p.add_argument("--single-batched", default="",
                   help="extra single encodes at --single-bpps with random pixel batches: BATCH:STEPS,... (e.g. 16384:6000)")
    p.add_argument("--single-stacked", default="",
                   help="the same as --single-batched through encode_many with one image (no per-step host reads); "
                        "BATCH 0 means whole images, e.g. 0:2000,16384:6000")
    p.add_argument("--group-images", type=int, default=None, help="cap on the stacked group timed (default: as the curve)")
    p.add_argument("--batch-pixels", type=int, default=None, help="pixels per image and step of the curve (default: whole image)")
    p.add_argument("--min-steps", type=int, default=300)
    p.add_argument("--max-steps", type=int, default=20000)
    args = p.parse_args(argv)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU")
    cuda = device == "cuda"
    report = {"device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
              "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
              "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(report), flush=True)
    pixels = load_pixels(args.image)
    encode_pixels(pixels[:128, :128], EncoderConfig(bpp=1.0, steps=50, device=device, arch="siren"))  # CUDA start-up, not timed
    single_bpps = [float(v) for v in args.single_bpps.split(",")]
    rows, files = single_encodes(pixels, single_bpps, device, args.single_steps)
    report["single_image"] = {"image": Path(args.image).name, "rows": rows}
    report["decode_difference"] = {str(b): _decode_difference(d, pixels, device) for b, d in files.items()}
    print(json.dumps(report["decode_difference"]), flush=True)
    by = {(r["bpp_target"], r["tf32"]): r["psnr"] for r in rows}
    tf32 = all(by[(b, True)] >= by[(b, False)] - TF32_TOLERANCE_DB for b in single_bpps)
    if args.single_batched:
        variants = [tuple(int(v) for v in item.split(":")) for item in args.single_batched.split(",")]
        report["single_image"]["batched_rows"] = batched_single_encodes(pixels, single_bpps, variants, device, tf32=tf32)
    if args.single_stacked:
        variants = [tuple(int(v) for v in item.split(":")) for item in args.single_stacked.split(",")]
        report["single_image"]["stacked_rows"] = batched_single_encodes(pixels, single_bpps, variants, device, tf32=tf32,
                                                                        stacked=True)
    curve_bpps = [float(v) for v in args.curve_bpps.split(",")]
    timing = stacked_step_seconds(pixels.shape, curve_bpps, args.group_images or args.curve_images, device, tf32=tf32,
                                  batch_pixels=args.batch_pixels)
    curve_seconds = args.curve_seconds if args.curve_deadline is None else args.curve_deadline - time.time() - 15
    per_step_all = sum(t["image_step_seconds"] * args.curve_images for t in timing.values())
    steps = int(min(args.max_steps, max(args.min_steps, args.curve_share * curve_seconds / per_step_all)) // 50 * 50)
    report["curve"] = {"bpps": curve_bpps, "tf32": tf32, "steps": steps, "batch_pixels": args.batch_pixels, "step_timing": timing,
                       "planned_fit_seconds": steps * per_step_all, "curve_seconds": curve_seconds,
                       "curve_share": args.curve_share}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["curve"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
