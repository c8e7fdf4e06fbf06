"""Byte identity of a fixed set of encodes: every family, fixed steps, several sizes (sha256 per file).

    python -m benchmarks.identity > before.json      # on one commit
    python -m benchmarks.identity --compare before.json  # on another: exit 1 if any file differs

A refactoring that must not change what the encoder writes is checked with it. The encodes use small
crops of the bundled sample and of a Kodak image, a fixed seed, fixed steps and one torch thread.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak" / "kodim05.png"


def _images() -> dict[str, np.ndarray]:
    sample = np.asarray(Image.open(files("codec") / "samples" / "kodim23_crop128.png").convert("RGB"))
    out = {"rgb48x32": sample[10:42, 20:68], "gray40x56": np.asarray(Image.fromarray(sample[:56, :40]).convert("L"))[:, :, None],
           "rgb128": sample}
    if KODAK.is_file():
        photo = np.asarray(Image.open(KODAK).convert("RGB"))
        out["rgb160x120"] = photo[100:220, 200:360]
        out["rgb320x240"] = photo[50:290, 100:420]
    return out


#: (name, image, options of codec.encode_with_stats)
CASES = [
    ("siren_bpp", "rgb48x32", dict(arch="siren", bpp=2.0, steps=60)),
    ("siren_gray", "gray40x56", dict(arch="siren", bpp=1.5, steps=60)),
    ("siren_sparse", "rgb48x32", dict(arch="siren", bpp=2.0, steps=80, sparsity=0.3)),
    ("siren_meta", "rgb128", dict(arch="siren", preset="high", steps=40, init="meta")),
    ("siren_batch", "rgb160x120", dict(arch="siren", bpp=0.8, steps=30)),
    ("poly_bpp", "rgb48x32", dict(arch="poly", bpp=2.0, steps=60)),
    ("poly_gray", "gray40x56", dict(arch="poly", bpp=1.5, steps=60)),
    ("latent_bpp", "rgb48x32", dict(arch="latent", bpp=2.0, steps=60)),  # refused: too low
    ("latent_bits", "rgb128", dict(arch="latent", bpp=1.0, steps=60)),
    ("latent_gray", "gray40x56", dict(arch="latent", bpp=4.0, steps=60)),
    ("latent_bicubic", "rgb128", dict(arch="latent", latent_sampling="bicubic", preset="max", steps=40)),
    ("latent_low", "rgb160x120", dict(arch="latent", preset="low", steps=40)),
    ("latent_medium", "rgb160x120", dict(arch="latent", preset="medium", steps=150)),
    ("latent_batch", "rgb320x240", dict(arch="latent", preset="medium", steps=20)),
    ("auto_medium", "rgb128", dict(preset="medium", steps=40)),
    ("auto_small", "rgb48x32", dict(bpp=0.3, steps=40)),
]

#: (name, image, (hidden width, hidden layers, bits)) of SIREN encodes of a fixed size and bit width
FIXED = [("siren_fixed_bits8", "rgb48x32", (16, 3, 8.0)), ("siren_fixed_bits5", "gray40x56", (12, 2, 5.0))]


def run() -> dict:
    import torch

    from codec import OptionError, encode_with_stats

    torch.set_num_threads(1)
    images = _images()
    out = {}
    for name, image, options in CASES:
        if image not in images:
            continue
        try:
            result = encode_with_stats(images[image], seed=3, device="cpu", **options)
        except OptionError as exc:
            out[name] = {"refused": str(exc)}
        else:
            out[name] = {"sha256": hashlib.sha256(result.data).hexdigest(), "bytes": len(result.data), "arch": result.arch}
        print(f"{name}: {out[name]}", file=sys.stderr)
    from codec import EncoderConfig
    from codec.encoding import encode_pixels
    from codec.encoding.stacked import encode_many
    from codec.config import MlpSettings

    for name, image, (width, layers, bits) in FIXED:  # a fixed network and bit width: no rate control
        if image in images:
            cfg = EncoderConfig(arch="siren", steps=60, seed=3, device="cpu",
                                mlp=MlpSettings(hidden_width=width, hidden_layers=layers, bits=bits))
            result = encode_pixels(images[image], cfg)
            out[name] = {"sha256": hashlib.sha256(result.data).hexdigest(), "bytes": len(result.data), "arch": result.arch}

    if "rgb160x120" in images:  # two same-size SIRENs fitted as one stacked network (folder encodes on a GPU)
        pair = [images["rgb160x120"], images["rgb160x120"][::-1].copy()]
        for k, result in enumerate(encode_many(pair, EncoderConfig(arch="siren", bpp=0.8, steps=30, seed=3, device="cpu"))):
            out[f"stacked_{k}"] = {"sha256": hashlib.sha256(result.data).hexdigest(), "bytes": len(result.data),
                                   "arch": result.arch}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.identity", description=__doc__.splitlines()[0])
    p.add_argument("--compare", type=Path, help="a JSON written by an earlier run: exit 1 unless every file is the same")
    args = p.parse_args(argv)
    now = run()
    if args.compare is None:
        print(json.dumps(now, indent=1))
        return 0
    before = json.loads(args.compare.read_text())
    differ = [k for k in before if now.get(k) != before[k]]
    print(json.dumps({"same": sorted(set(before) - set(differ)), "differ": differ}, indent=1))
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
