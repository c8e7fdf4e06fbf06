"""One latent-grid fit (issue 9) with some of `codec.latent_encoder`'s settings changed, and its real file.

    python -m benchmarks.latent_settings ../shared/data/kodak/kodim01.png --bpp 0.3 --steps 1000 \\
        --batch 65536 [--lr 0.05] [--set FINAL_FRACTION=0.1 --set SYNTH_WIDTH=40 ...]

Runs the encoder's own fit (`codec.latent_encoder.fit`, lambda steered to the rate target) for a fixed
number of steps, then its rate-distortion rounding and rate fitting (`fit_to_budget`), decodes the file
and prints one JSON line (bpp of the real file, PSNR of its decoding, the latents' step, fit seconds) and
11 snapshots of lambda,
the estimated latent rate and the batch PSNR. `--set NAME=VALUE` overrides a module constant of
`codec.latent_encoder` for this run (levels, channels, MLP width, rounding share, ...): what the
settings table in benchmarks/results/latent_settings/ was measured with.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image

import codec.latent_encoder as le
from codec.decoder import decode_array
from codec.encoder import image_tensors
from codec.latentgrid import LatentGridInr
from codec.metrics import psnr
from codec.progress import Progress


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """`--set NAME=VALUE`, repeatable: constants of codec.latent_encoder to override (see apply_settings)."""
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a constant of codec.latent_encoder")


def apply_settings(items: list[str]) -> None:
    """Set each NAME=VALUE on codec.latent_encoder, the value converted to the constant's type."""
    for item in items:
        name, value = item.split("=", 1)
        setattr(le, name, type(getattr(le, name))(value))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latent_settings", description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--bpp", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=le.CPU_BATCH_PIXELS, help="pixels per step")
    p.add_argument("--lr", type=float, default=0.05, help="the latents' learning rate")
    add_set_option(p)
    a = p.parse_args(argv)
    apply_settings(a.set)
    pixels = np.asarray(Image.open(a.image).convert("RGB"))
    height, width, channels = pixels.shape
    grid = le.default_grid(width, height)
    torch.manual_seed(0)
    model = LatentGridInr(channels=channels, hidden_width=le.SYNTH_WIDTH, hidden_layers=le.SYNTH_LAYERS, grid=grid)
    coords, target, _ = image_tensors(pixels, torch.device("cpu"))
    budget = int(a.bpp * width * height // 8)
    fixed = le.fixed_bytes(pixels, grid)
    latent_bpp = 8 * (budget - fixed) / (width * height)
    trace: list = []
    t0 = time.time()
    _, _, lam, synth_steps = le.fit(model, coords, target, steps=a.steps, lr=a.lr, lam=le.initial_lambda(latent_bpp), latent_bpp_target=latent_bpp,
           deadline=None, progress=Progress(enabled=False), batch_pixels=a.batch,
           generator=torch.Generator().manual_seed(0), trace=trace)
    fit_seconds = time.time() - t0
    if le.RD_ROUNDING:  # as the encoder does after its fit
        le.round_latents_for_rate(model, target, pixels, lam, synth_steps, device="cpu", budget_bytes=budget)
    data, step = le.fit_to_budget(model, budget, synth_steps=synth_steps)
    print(json.dumps({"image": a.image.rsplit("/", 1)[-1], "target_bpp": a.bpp, "steps": a.steps, "batch": a.batch,
                      "lr": a.lr, "set": a.set, "bpp": round(8 * len(data) / (width * height), 4),
                      "psnr": round(psnr(decode_array(data), pixels), 2), "latent_step": step,
                      "fit_seconds": round(fit_seconds, 1), "torch_threads": torch.get_num_threads()}))
    for snap in trace[::2] + trace[-1:]:
        print("   ", json.dumps({k: round(v, 5) for k, v in snap.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
