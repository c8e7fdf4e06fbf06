"""Encode and decode the bundled sample image on the CPU and print bytes, bpp and PSNR.

    python -m codec.demo [--steps N] [--preset NAME]
"""
from __future__ import annotations

import argparse
import time
from importlib.resources import files

import numpy as np

from .api import decode, encode_with_stats
from .config import DEFAULT_PRESET, PRESETS
from .imageio import load_pixels
from .metrics import psnr

SAMPLE = "kodim23_crop128.png"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET)
    args = parser.parse_args(argv)
    path = files("codec") / "samples" / SAMPLE
    original = load_pixels(str(path))
    t0 = time.monotonic()
    result = encode_with_stats(str(path), preset=args.preset, steps=args.steps, device="cpu", progress=True)
    t1 = time.monotonic()
    decoded = np.asarray(decode(result.data, device="cpu"))
    t2 = time.monotonic()
    print(f"sample   {SAMPLE} ({result.width}x{result.height}), preset {args.preset}, {result.steps} steps")
    print(f"bytes    {len(result.data)}")
    print(f"bpp      {8 * len(result.data) / (result.width * result.height):.4f}")
    print(f"PSNR     {psnr(decoded.reshape(original.shape), original):.2f} dB (decoded file)")
    print(f"encode   {t1 - t0:.1f} s, decode {t2 - t1:.2f} s on cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
