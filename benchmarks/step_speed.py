"""Speed of the latent-grid family's fitting step: the step as it was before the fused step
(`ReferenceStep`, kept here verbatim in behaviour: per-level grids, autograd over the Laplace CDF,
per-level noise), the encoder's step (`codec.encoding.latent_step`, as `codec.encoding.latent.fit`
runs it) and a float32 matrix product of the machine, in one run.

    python -m benchmarks.step_speed [IMAGE] [--threads 2] [--steps 30] [--rounds 5] [--batch 65536]
        [--profile] [--out DIR]

Both steps fit the same default model (8 levels, 24 x 2 synthesis) of the image (default: a 768x512
Kodak image) with the default CPU batch of random pixels and the rate term over every latent; they
alternate in --rounds rounds of --steps steps each and the median round counts. The matrix product
(1024 x 1024 x 1024, float32, the same threads) gives the machine's peak. The step's arithmetic is
counted as its multiply-adds x 2 (synthesis MLP forward and backward, the grid taps forward and
backward, the rate term at ~40 operations per latent): the share of peak is that count over the
step's time, divided by the peak. --profile adds torch.profiler tables of both steps and the encoder's
step timed by part (its numba passes are outside torch's profiler). Writes
step_speed.json and step_speed.md to --out (default: print only).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .probes.receiver_speed import _commit

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim01.png"
RATE_OPS_PER_LATENT = 40  #: operations of the rate term and Adam per latent


# --- the step before the fused step (codec/encoding/latent.py at commit e451638), for comparison ---

def _reference_laplace_bits(values, log_scale):
    b = torch.exp(log_scale).clamp_min(1e-3)

    def cdf(x):
        return 0.5 + 0.5 * torch.sign(x) * (1 - torch.exp(-x.abs() / b))

    return -torch.log2((cdf(values + 0.5) - cdf(values - 0.5)).clamp_min(1e-9))


class _ReferenceScaleOfClass(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, classes):
        ctx.save_for_backward(classes)
        ctx.n = table.numel()
        return table[classes]

    @staticmethod
    def backward(ctx, grad):
        (classes,) = ctx.saved_tensors
        return torch.bincount(classes.reshape(-1), weights=grad.reshape(-1), minlength=ctx.n).to(grad.dtype), None


def _reference_classes(grid, n_classes):
    with torch.no_grad():
        mags = F.pad(torch.round(grid).abs(), (1, 0, 1, 0))
        left, above, above_left = mags[:, 1:, :-1], mags[:, :-1, 1:], mags[:, :-1, :-1]
        return torch.clamp(2 * left + 2 * above + above_left, max=n_classes - 1).long()


class ReferenceStep:
    """One step of the latent fit as it was: noise per level, pixel_features, autograd MLP, the CDF rate."""

    def __init__(self, model, coords, target, batch, generator, n_classes, lam=0.01, lr=0.05):
        self.model, self.coords, self.target, self.batch, self.generator = model, coords, target, batch, generator
        self.n_classes, self.lam = n_classes, lam
        self.latents = list(model.latents)
        self.log_scales = torch.zeros(model.grid.levels, n_classes, requires_grad=True)
        self.opt = torch.optim.Adam([{"params": self.latents, "lr": lr},
                                     {"params": list(model.layers.parameters()) + [self.log_scales], "lr": lr / 2}])

    def __call__(self):
        n_pix = self.coords.shape[0]
        used = [g + torch.rand_like(g) - 0.5 for g in self.latents]
        idx = torch.randint(0, n_pix, (self.batch,), generator=self.generator)
        out = self.model.synthesis(self.model.pixel_features(self.coords, idx, used))
        mse = torch.mean((out - self.target[idx]) ** 2)
        bits = sum(_reference_laplace_bits(u, _ReferenceScaleOfClass.apply(self.log_scales[l],
                                                                           _reference_classes(u, self.n_classes))).sum()
                   for l, u in enumerate(used))
        loss = mse + self.lam * bits / n_pix
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


class EncoderStep:
    """One step of the latent fit as codec.encoding.latent.fit runs it on the CPU (the noise phase, its bits
    not computed, as when nothing reports them). `phases` accumulates the seconds of each part."""

    PHASES = ("batch draw and sort", "distortion pass (numba)", "latent pass (numba)", "torch Adam (MLP, scales)")

    def __init__(self, model, coords, target, batch, generator, n_classes, lam=0.01, lr=0.05):
        from codec.encoding.latent_cpu import NOISE, FusedDistortion, FusedLatents
        from codec.encoding.latent_step import LatentState

        self.model, self.coords, self.batch, self.generator, self.lam, self.lr = model, coords, batch, generator, lam, lr
        self.state = LatentState(model, n_classes)
        self.fused = FusedLatents(self.state, seed=0)
        self.fused.begin(NOISE)
        self.distortion = FusedDistortion(self.state, model.grid.width, model.grid.height, model.grid.sampling, target)
        self.weights = model.parameters_in_file_order()[model.grid.levels:]
        self.log_scales = torch.zeros(model.grid.levels, n_classes, requires_grad=True)
        self.opt = torch.optim.Adam(list(model.layers.parameters()) + [self.log_scales], lr=lr / 2, fused=True)
        self.phases = dict.fromkeys(self.PHASES, 0.0)

    def __call__(self):
        n_pix = self.coords.shape[0]
        marks = [time.perf_counter()]
        self.opt.zero_grad(set_to_none=True)
        idx = np.sort(torch.randint(0, n_pix, (self.batch,), generator=self.generator).numpy())
        marks.append(time.perf_counter())
        _, grads, latent_grad = self.distortion.step(self.fused.used, idx, self.weights)
        for p, g in zip(self.weights, grads):
            p.grad = g
        marks.append(time.perf_counter())
        _, per_class = self.fused.step(latent_grad, self.log_scales.detach().reshape(-1).numpy(), self.lam / n_pix,
                                       self.lr, want_bits=False)
        self.log_scales.grad = torch.from_numpy(per_class * (self.lam / n_pix)).float().reshape(self.log_scales.shape)
        marks.append(time.perf_counter())
        self.opt.step()
        marks.append(time.perf_counter())
        for name, t0, t1 in zip(self.PHASES, marks, marks[1:]):
            self.phases[name] += t1 - t0


def step_flops(model, batch: int) -> float:
    """Floating-point operations of one step (2 per multiply-add), as the module's doc counts them."""
    widths = [layer.in_features for layer in model.layers] + [model.layers[-1].out_features]
    mlp = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    taps = 4 if model.grid.sampling == 0 else 16
    sampling = (model.grid.levels - 1) * model.grid.channels * taps + model.grid.channels
    return 2 * 3 * batch * (mlp + sampling) + RATE_OPS_PER_LATENT * model.grid.values()


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 2 * n ** 3 / best / 1e9


def _setup(image: Path, batch: int, kind):
    from codec.encoding import latent
    from codec.encoding.common import image_tensors
    from codec.imageio import load_pixels
    from bitstream.entropy import NEIGHBOUR_CLASSES

    pixels = load_pixels(str(image))
    height, width, channels = pixels.shape
    torch.manual_seed(0)
    model = latent.new_model(channels, latent.default_grid(width, height))
    with torch.no_grad():  # latents of a fitted file's magnitude, so the rate term sees realistic classes
        for g in model.latents:
            g.normal_(0.0, 1.0)
    coords, target, _ = image_tensors(pixels, torch.device("cpu"))
    return kind(model, coords, target, min(batch, width * height), torch.Generator().manual_seed(0),
                NEIGHBOUR_CLASSES), model, (width, height)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", nargs="?", default=str(DEFAULT_IMAGE))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30, help="steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = {}
    for name, kind in (("before", ReferenceStep), ("encoder", EncoderStep)):
        step, model, size = _setup(Path(args.image), args.batch, kind)
        for _ in range(3):
            step()
        steps[name] = step
    times = {name: [] for name in steps}
    peaks = []
    for _ in range(args.rounds):
        peaks.append(matmul_gflops())
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - t0) / args.steps)
    peak = statistics.median(peaks)
    flops = step_flops(model, min(args.batch, size[0] * size[1]))
    result = {
        "meta": {"command": "python -m benchmarks.step_speed " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
                 "commit": _commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "device": f"CPU ({platform.processor() or platform.machine()}), {args.threads} torch threads",
                 "torch": torch.__version__, "image": Path(args.image).name, "size": list(size), "batch": args.batch},
        "matmul_gflops": peak,
        "step_gflop": flops / 1e9,
        "seconds_per_step": {name: statistics.median(t) for name, t in times.items()},
        "rounds": times,
    }
    sec = result["seconds_per_step"]
    result["speedup"] = sec["before"] / sec["encoder"]
    result["share_of_peak"] = {name: flops / s / 1e9 / peak for name, s in sec.items()}
    lines = [f"# Latent fitting step, {size[0]}x{size[1]}, batch {args.batch}, {args.threads} threads",
             "", f"`{result['meta']['command']}` at {result['meta']['commit']}, {result['meta']['date']}, "
             f"{result['meta']['device']}, torch {torch.__version__}", "",
             f"float32 matmul peak: {peak:.1f} GFLOP/s; the step's arithmetic: {flops / 1e9:.3f} GFLOP", "",
             "| step | ms per step | GFLOP/s | share of peak |", "|---|---|---|---|"]
    for name, s in sec.items():
        lines.append(f"| {name} | {1e3 * s:.1f} | {flops / s / 1e9:.1f} | {100 * result['share_of_peak'][name]:.1f} % |")
    lines += ["", f"speed-up: {result['speedup']:.2f}x (median of {args.rounds} alternating rounds of {args.steps} steps)"]
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for name, step in steps.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(10):
                    step()
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
            lines += ["", f"## profile: {name} (10 steps)", "", "```", table, "```"]
        encoder = steps["encoder"]  # most of its time is numba's, outside torch's profiler: its parts by the clock
        encoder.phases = dict.fromkeys(encoder.PHASES, 0.0)
        for _ in range(args.steps):
            encoder()
        total = sum(encoder.phases.values())
        lines += ["", f"## the encoder's step by part ({args.steps} steps, wall clock)", "", "| part | ms per step | share |",
                  "|---|---:|---:|"]
        lines += [f"| {k} | {1e3 * v / args.steps:.2f} | {100 * v / total:.0f} % |" for k, v in encoder.phases.items()]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "step_speed.json").write_text(json.dumps(result, indent=1))
        (args.out / "step_speed.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
