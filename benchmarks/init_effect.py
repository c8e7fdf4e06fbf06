"""Random vs meta-learned starting weights at fixed step counts: one line per image, steps and init.

    python -m benchmarks.init_effect --bpp 0.15 --steps 100,300,600 ../shared/data/kodak/kodim01.png ../shared/data/kodak/kodim23.png

Each line: the real file's rate and the decoded PSNR of `codec.encoder.encode_pixels` with
``EncoderConfig(bpp=..., steps=..., device="cpu", init=...)`` (see benchmarks/results/meta_init).
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
    p = argparse.ArgumentParser(prog="python -m benchmarks.init_effect", description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+")
    p.add_argument("--bpp", type=float, default=0.15)
    p.add_argument("--steps", default="100,300,600")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    for steps in (int(s) for s in args.steps.split(",")):
        for path in args.images:
            pixels = np.asarray(Image.open(path).convert("RGB"))
            for init in ("random", "meta"):
                t0 = time.perf_counter()
                r = encode_pixels(pixels, EncoderConfig(bpp=args.bpp, steps=steps, device=args.device, init=init, arch="siren"))
                print(json.dumps({"image": path.rsplit("/", 1)[-1], "steps": steps, "init": init, "used": r.init,
                                  "network": [r.hidden_width, r.hidden_layers], "bpp": r.bpp, "psnr": r.psnr,
                                  "seconds": time.perf_counter() - t0}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
