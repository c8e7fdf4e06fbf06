"""GPU checks and planning for the latent-grid family's Kodak curve (benchmarks/gpu_runbook.sh, GPU_FAMILY=latent).

    python -m benchmarks.probes.gpu_latent probe --image kodim23.png --steps 150 --out probe_0.json
    python -m benchmarks.probes.gpu_latent check --image kodim23.png --steps 2000 --out latent_check.json
    python -m benchmarks.probes.gpu_latent plan --probes probe_*.json --images 24,12,6 --rates 5 --seconds 330
    python -m benchmarks.probes.gpu_latent profile --image kodim23.png --steps 20 --out profile.txt

`probe` times the latent fit's steps (whole-image steps, as a CUDA encode runs them) in one process;
the runbook starts as many probes at once as the curve will run processes, so their step times include
the sharing of the GPU. `check` encodes one image at 0.3 bpp on the device (seconds, rate, PSNR),
decodes the file on the CPU (torch and numpy) and on the device (pixel values that differ, the
3840 px decode time), and encodes a short fit twice to see whether the device's bytes repeat.
`plan` turns the probes' step times into the curve's image count and step count: each process runs its
images' encodes in `--seconds`, each with `--finish-seconds` of rate search, decoding and scoring.
`profile` lists the kernels of a few steps, most device time first.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from codec.config import EncoderConfig
from codec.encoding import encode_pixels
from codec.encoding.common import image_tensors
from codec.imageio import load_pixels
from codec.encoding.latent import DEFAULTS, default_grid, fit, initial_lambda
from codec.families.latent.model import LatentGridInr
from codec.progress import Progress

from .gpu_check import _decode_difference, _timed


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu"


def step_seconds(pixels, device: str, steps: int, warmup: int = 10, batch_pixels: int | None = None) -> dict:
    """Seconds per latent fitting step (after `warmup` steps), rate-controlled at 0.25 latent bpp, on
    whole images (as a CUDA encode runs them) or on `batch_pixels` random pixels."""
    height, width, channels = pixels.shape
    grid = default_grid(width, height)
    coords, target, _ = image_tensors(pixels, torch.device(device))

    def run(n):
        torch.manual_seed(0)
        model = LatentGridInr(channels=channels, hidden_width=DEFAULTS.synth_width, hidden_layers=DEFAULTS.synth_layers, grid=grid).to(device)
        fit(model, coords, target, steps=n, lr=5e-2, lam=initial_lambda(0.25), latent_bpp_target=0.25, deadline=None,
            progress=Progress(enabled=False), batch_pixels=batch_pixels or width * height,
            generator=torch.Generator(device=device).manual_seed(0))

    run(warmup)
    _, seconds = _timed(lambda: run(steps))
    return {"device": _device_name(device), "steps": steps, "seconds": seconds, "seconds_per_step": seconds / steps,
            "pixels": width * height, "batch_pixels": batch_pixels or width * height, "latents": grid.values()}


def check(pixels, device: str, steps: int, repeat_steps: int, name: str) -> dict:
    """One 0.3 bpp encode on `device` with its decodes compared across devices, and a repeat test."""
    encode_pixels(pixels[:64, :64], EncoderConfig(bpp=8.0, steps=20, arch="latent", device=device))  # start-up
    result, seconds = _timed(lambda: encode_pixels(pixels, EncoderConfig(bpp=0.3, steps=steps, arch="latent",
                                                                          device=device)))
    out = {"device": _device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "image": name,
           "encode": {"bpp_target": 0.3, "steps": result.steps, "seconds": seconds, "bytes": result.bytes,
                      "bpp": result.bpp, "psnr": result.psnr, "latent_step": result.quant_step}}
    print(json.dumps(out), flush=True)
    out["decode_difference"] = _decode_difference(result.data, pixels, device)
    print(json.dumps(out["decode_difference"]), flush=True)
    cfg = EncoderConfig(bpp=0.3, steps=repeat_steps, arch="latent", device=device)
    first, second = encode_pixels(pixels, cfg), encode_pixels(pixels, cfg)
    out["repeat"] = {"steps": repeat_steps, "identical_bytes": first.data == second.data,
                     "bytes": [first.bytes, second.bytes], "psnr": [first.psnr, second.psnr]}
    print(json.dumps(out["repeat"]), flush=True)
    return out


def plan(probes: list[dict], *, image_counts: list[int], rates: int, seconds: float, finish_seconds: float,
         want_steps: int, min_steps: int, max_steps: int, single: dict | None = None) -> dict:
    """The most images (of `image_counts`) whose curve gets at least `want_steps` steps per encode in
    `seconds`, images split over at most as many processes as probes ran; the fewest images when none
    does. The step time of P processes is the slowest concurrent probe's, scaled by P / probes (as if the
    device were the bottleneck), but not below the `single` probe's. Returns images, processes, steps."""
    shared = max(p["seconds_per_step"] for p in probes)
    for images in sorted(image_counts, reverse=True):
        procs = min(len(probes), images)
        per_step = max(shared * procs / len(probes), single["seconds_per_step"] if single else 0.0)
        jobs = -(-images // procs) * rates
        steps = int(min(max_steps, max(min_steps, (seconds / jobs - finish_seconds) / per_step)) // 50 * 50)
        if steps >= want_steps:
            break
    return {"images": images, "processes": procs, "steps": steps, "seconds_per_step_planned": per_step,
            "seconds_per_step_single": single["seconds_per_step"] if single else None,
            "seconds_per_step_each": [p["seconds_per_step"] for p in probes], "jobs_per_process": jobs,
            "seconds": seconds, "finish_seconds": finish_seconds, "want_steps": want_steps,
            "planned_seconds_per_process": jobs * (steps * per_step + finish_seconds)}


def profile(pixels, device: str, steps: int, batch_pixels: int | None) -> str:
    """The kernels of `steps` latent fitting steps (after 5 untimed), most device time first."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step_seconds(pixels, device, 5, warmup=1)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with torch_profile(activities=activities) as prof:
        step_seconds(pixels, device, steps, warmup=0, batch_pixels=batch_pixels)
    key = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("probe", "check", "profile"):
        s = sub.add_parser(name)
        s.add_argument("--image", required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--device", default="cuda")
        s.add_argument("--steps", type=int, default={"probe": 150, "check": 2000, "profile": 20}[name])
        if name == "check":
            s.add_argument("--repeat-steps", type=int, default=200)
        else:
            s.add_argument("--batch-pixels", type=int, default=None, help="random pixels per step (default: whole image)")
    s = sub.add_parser("plan")
    s.add_argument("--probes", nargs="+", required=True, help="probes that ran at once")
    s.add_argument("--single", default=None, help="a probe that ran alone")
    s.add_argument("--images", type=lambda v: [int(x) for x in v.split(",")], required=True,
                   help="image counts to choose from, e.g. 24,12,6 (the first N images)")
    s.add_argument("--rates", type=int, required=True, help="operating points per image")
    s.add_argument("--seconds", type=float, required=True, help="seconds each process may take")
    s.add_argument("--want-steps", type=int, default=1500, help="the fewest steps worth a larger image set")
    s.add_argument("--finish-seconds", type=float, default=6.0)
    s.add_argument("--min-steps", type=int, default=300)
    s.add_argument("--max-steps", type=int, default=20000)
    args = p.parse_args(argv)
    if args.what == "plan":
        probes = []
        for path in args.probes:
            try:
                probes.append(json.loads(Path(path).read_text()))
            except (OSError, ValueError):
                pass
        if not probes:
            raise SystemExit("gpu_latent plan: no probe results")
        single = None
        if args.single:
            try:
                single = json.loads(Path(args.single).read_text())
            except (OSError, ValueError):
                pass
        result = plan(probes, single=single, image_counts=args.images, rates=args.rates, seconds=args.seconds,
                      finish_seconds=args.finish_seconds, want_steps=args.want_steps, min_steps=args.min_steps,
                      max_steps=args.max_steps)
        print(json.dumps(result))
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_latent: no CUDA GPU")
    pixels = load_pixels(args.image)
    if args.what == "profile":
        table = profile(pixels, args.device, args.steps, args.batch_pixels)
        Path(args.out).write_text(table + "\n")
        print(table, flush=True)
        return 0
    if args.what == "probe":
        result = step_seconds(pixels, args.device, args.steps, batch_pixels=args.batch_pixels)
    else:
        result = check(pixels, args.device, args.steps, args.repeat_steps, Path(args.image).name)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if args.what == "probe":
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
