"""Rate-distortion rounding of one real fit, every move set and sweep count side by side (issue 9).

    python -m benchmarks.probes.rd_rounding IMAGE --bpp 0.4 [--steps 2702] [--sweeps 3]

Encodes IMAGE with the latent-grid encoder (`inr-encode --arch latent` with these options), keeps the fitted
model as it is before its rounding (`codec.latent_encoder.round_latents_for_rate`), and then, from that one
fit, writes the file of the plain rounding and of each move set of `codec.latent_rounding` after 1, 2, ...
sweeps, at latent step 1: its bytes, the PSNR of its decoding and the fit's loss MSE + lambda x rate. The
comparison is exact (one fit, different roundings); the files are not fitted to the budget.
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch

import codec.encoding.latent as le
from bitstream.entropy import NEIGHBOUR_CLASSES
from codec.config import EncoderConfig
from codec.decoding.decoder import decode_array
from codec.encoding import encode_pixels
from codec.imageio import load_pixels
from codec.encoding.latent_rounding import MOVES, rd_round
from codec.metrics import psnr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probes.rd_rounding", description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--bpp", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=None, help="fitting steps (default: planned from the time budget)")
    p.add_argument("--sweeps", type=int, default=3)
    a = p.parse_args(argv)
    captured = {}
    rounding = le.round_latents_for_rate

    def capture(model, target, pixels, lam, synth_steps, **kwargs):
        captured.update(model=copy.deepcopy(model), target=target, pixels=pixels, lam=lam, synth=synth_steps)
        return rounding(model, target, pixels, lam, synth_steps, **kwargs)

    le.round_latents_for_rate = capture  # the encoder looks it up in its module at call time
    try:
        result = encode_pixels(load_pixels(a.image), EncoderConfig(arch="latent", bpp=a.bpp, steps=a.steps))
    finally:
        le.round_latents_for_rate = rounding
    model, target, pixels, lam, synth = (captured[k] for k in ("model", "target", "pixels", "lam", "synth"))

    def measure(m) -> dict:
        data = le.serialize(m, 1.0, synth_steps=synth)
        return {"bytes": len(data), "psnr": round(psnr(decode_array(data), pixels), 3),
                "cost": le.file_cost(data, pixels, lam, "cpu")}

    plain = measure(model)
    print(json.dumps({"image": a.image.rsplit("/", 1)[-1], "target_bpp": a.bpp, "steps": result.steps,
                      "lambda": lam, "encoder_file": [result.bytes, round(result.psnr, 3)], "plain": plain}))
    for moves in MOVES:
        m = copy.deepcopy(model)
        for sweep in range(1, a.sweeps + 1):
            t0 = time.monotonic()
            rounded, moved = rd_round(m, target, lam, synth, n_classes=NEIGHBOUR_CLASSES, moves=moves)
            seconds = time.monotonic() - t0
            with torch.no_grad():
                for g, q in zip(m.latents, rounded):
                    g.copy_(q)
            r = measure(m)
            print(json.dumps({"moves": moves, "sweep": sweep, "moved": moved, **r,
                              "bytes_change_pct": round(100 * (r["bytes"] / plain["bytes"] - 1), 2),
                              "psnr_change_db": round(r["psnr"] - plain["psnr"], 3),
                              "cost_change_pct": round(100 * (r["cost"] / plain["cost"] - 1), 2),
                              "seconds": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
