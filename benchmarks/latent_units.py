"""Encode one image with the latent-grid family as `inr-encode` does, and report its fit and its synthesis MLP.

Prints the encode's summary, the fit's trace (lambda, estimated latent rate and batch PSNR at 20 points)
and, for the decoded network, how many ReLU units of each hidden layer are dead (never positive at any
pixel of the image) and the spread of each grid's features. `--set NAME=VALUE` overrides a constant of
`codec.latent_encoder` (e.g. MLP_LR_FACTOR=0.1), as `benchmarks.latent_settings` does.

    python -m benchmarks.latent_units ../shared/data/kodak/kodim04.png --bpp 0.3 [--set MLP_LR_FACTOR=0.1]
"""
from __future__ import annotations

import argparse
import json

import torch

import bitstream
import codec.latent_encoder as le
from codec.config import LATENT_SAMPLING_CHOICES, EncoderConfig
from codec.coords import grid as pixel_grid
from codec.decoder import build_model
from codec.encoder import encode_pixels
from codec.imageio import load_pixels

from .latent_settings import add_set_option, apply_settings


def synthesis_report(data: bytes) -> dict:
    """Dead units per hidden layer and feature spread per grid of a latent-grid file, over its own pixels."""
    header, symbols = bitstream.read_file(data)
    model = build_model(header, bitstream.dequantize(header, symbols), torch.device("cpu"))
    with torch.no_grad():
        features = model.features(pixel_grid(header.height, header.width))
        h, dead = features, []
        for layer in model.layers[:-1]:
            z = layer(h)
            dead.append(int(((z > 0).sum(dim=0) == 0).sum()))
            h = torch.relu(z)
    return {"dead_units": dead, "hidden_width": header.hidden_width,
            "feature_std": [round(float(s), 3) for s in features.std(dim=0)]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latent_units", description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--bpp", type=float, default=0.3)
    p.add_argument("--latent-sampling", choices=LATENT_SAMPLING_CHOICES, default=EncoderConfig.latent_sampling)
    add_set_option(p)
    a = p.parse_args(argv)
    apply_settings(a.set)
    trace: list = []
    fit = le.fit

    def traced_fit(*args, **kwargs):
        return fit(*args, **{**kwargs, "trace": trace})

    le.fit = traced_fit  # the encoder looks fit up in its module at call time
    try:
        result = encode_pixels(load_pixels(a.image), EncoderConfig(bpp=a.bpp, arch="latent",
                                                                    latent_sampling=a.latent_sampling))
    finally:
        le.fit = fit
    print(json.dumps({"image": a.image.rsplit("/", 1)[-1], "target_bpp": a.bpp, "set": a.set,
                      "sampling": a.latent_sampling, "bpp": round(result.bpp, 4), "psnr": round(result.psnr, 2),
                      "steps": result.steps, "seconds": round(result.seconds, 1), "torch_threads": torch.get_num_threads(),
                      **synthesis_report(result.data)}))
    for snap in trace:
        print("   ", json.dumps({k: round(v, 5) for k, v in snap.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
