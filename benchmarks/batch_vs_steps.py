"""Pixels per step against steps at equal work: encodes of one image whose (batch pixels x steps) is fixed.

    python -m benchmarks.batch_vs_steps ../shared/data/kodak/kodim23.png --bpp 0.3 --runs 393216x250,98304x1000,16384x6000

Compute per step grows with the pixels in it (on a GPU too: a full-image step is memory-bound), so
equal pixel-steps is equal work. One JSON line per run: rate of the real file, PSNR of its decoding.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from PIL import Image

from codec.config import EncoderConfig
from codec.encoder import encode_pixels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch_vs_steps", description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--bpp", type=float, default=0.3)
    p.add_argument("--runs", default="393216x250,98304x1000,16384x6000", help="BATCHxSTEPS, comma-separated")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    pixels = np.asarray(Image.open(args.image).convert("RGB"))
    for run in args.runs.split(","):
        batch, steps = (int(v) for v in run.split("x"))
        t0 = time.perf_counter()
        r = encode_pixels(pixels, EncoderConfig(bpp=args.bpp, steps=steps, batch_pixels=batch, device=args.device, arch="siren"))
        print(json.dumps({"batch": batch, "steps": steps, "pixel_steps": batch * steps,
                          "network": [r.hidden_width, r.hidden_layers], "bpp": r.bpp, "psnr": r.psnr,
                          "seconds": time.perf_counter() - t0}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
