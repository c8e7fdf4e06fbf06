"""Does a network of a given family and size learn? A plain fit of one image, reporting the whole-image PSNR.

    python -m benchmarks.fit_probe ../shared/data/kodak/kodim23.png --width 76 --layers 7 --lr 2e-3 --warmup 50
    python -m benchmarks.fit_probe ../shared/data/kodak/kodim01.png --width 56 --layers 6 --lr 2e-3 --warmup 50 --steps 1000 --arch siren-pe --pe-frequencies 6

Adam on random pixel batches with (optionally) a linear warm-up and a cosine decay to 5 %, no
quantization: the probe behind the encoder's warm-up and width-scaled learning rates. `--init-scaled`
multiplies each layer's rate by its initial weight bound over that of a width-64 hidden layer (an
alternative that was measured and rejected). `--arch poly` fits the Poly-INR family (codec.polyinr);
`--arch siren-pe` a SIREN whose first layer sees Fourier features of the coordinates, (p, sin(2^k pi p),
cos(2^k pi p)) for k < F (Strumpler et al. 2022; not a format family: measured here, not adopted).
Prints one line: image, settings, PSNR, seconds.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from PIL import Image

from codec.coords import grid
from codec.polyinr import PolyInr
from codec.siren import Siren


class FourierSiren(torch.nn.Module):
    """A SIREN fed (x, y, sin(2^k pi x), sin(2^k pi y), cos(2^k pi x), cos(2^k pi y)) for k < frequencies."""

    def __init__(self, *, width: int, layers: int, frequencies: int):
        super().__init__()
        self.register_buffer("bands", math.pi * 2.0 ** torch.arange(frequencies))
        self.siren = Siren(channels=3, hidden_width=width, hidden_layers=layers)
        fan_in = 2 + 4 * frequencies
        first = torch.nn.Linear(fan_in, width)
        with torch.no_grad():
            first.weight.uniform_(-1.0 / fan_in, 1.0 / fan_in)  # the SIREN first-layer bound for this fan-in
        self.siren.sines[0].linear = first

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        angles = (coords[..., None] * self.bands).flatten(1)
        return self.siren(torch.cat([coords, torch.sin(angles), torch.cos(angles)], dim=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fit_probe", description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--init-scaled", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", choices=("siren", "poly", "siren-pe"), default="siren")
    p.add_argument("--pe-frequencies", type=int, default=6)
    a = p.parse_args(argv)
    if a.init_scaled and a.arch != "siren":
        p.error("--init-scaled is for --arch siren")
    pixels = np.array(Image.open(a.image).convert("RGB"))
    height, width, _ = pixels.shape
    torch.manual_seed(a.seed)
    if a.arch == "siren":
        model = Siren(channels=3, hidden_width=a.width, hidden_layers=a.layers)
    elif a.arch == "poly":
        model = PolyInr(channels=3, hidden_width=a.width, hidden_layers=a.layers)
    else:
        model = FourierSiren(width=a.width, layers=a.layers, frequencies=a.pe_frequencies)
    coords = grid(height, width)
    target = torch.from_numpy(pixels.reshape(-1, 3)).float() / 127.5 - 1
    reference = math.sqrt(6.0 / 64) / 30.0
    groups = [{"params": list(model.parameters()), "lr": a.lr, "base": a.lr}]
    if a.init_scaled:
        groups = []
        for k, lin in enumerate(model.linears()):
            fan_in = lin.weight.shape[1]
            bound = 1.0 / fan_in if k == 0 else math.sqrt(6.0 / fan_in) / 30.0
            rate = a.lr * bound / reference
            groups.append({"params": [lin.weight, lin.bias], "lr": rate, "base": rate})
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    for step in range(1, a.steps + 1):
        factor = min(1.0, step / a.warmup) if a.warmup else 1.0
        factor *= 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = g["base"] * factor
        idx = torch.randint(0, height * width, (a.batch,), generator=gen)
        loss = ((model(coords[idx]) - target[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = sum(float(((model(coords[i:i + 65536]) - target[i:i + 65536]) ** 2).sum())
                  for i in range(0, height * width, 65536)) / target.numel()
    psnr = 10 * math.log10(4 / mse) if mse > 0 else math.inf
    params = sum(t.numel() for t in model.parameters())
    family = a.arch + (f" F={a.pe_frequencies}" if a.arch == "siren-pe" else "")
    print(f"{a.image.split('/')[-1]} {family} ({params} parameters) width {a.width} layers {a.layers} lr {a.lr:g} warmup {a.warmup} "
          f"init-scaled {int(a.init_scaled)} batch {a.batch} steps {a.steps}: PSNR {psnr:.2f} dB ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
