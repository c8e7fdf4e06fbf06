"""Feasibility probe for the latent-grid family (issue 9): real rate and PSNR of a Cool-chic-like model
fitted on the CPU, before any format work.

    python -m benchmarks.latent_probe ../shared/data/kodak/kodim23.png --lam 0.002 --steps 400

Model: `--levels` 2-D latent grids (one channel each, level l at 1/2**l of the image side), each
sampled bilinearly at the pixel centres (the codec's coordinate convention, ``align_corners=False``),
concatenated and mapped to RGB by a small MLP (`--hidden` units, `--layers` hidden layers, GELU).
Training: Adam on the whole image, loss = MSE + lam * (estimated bits per pixel), where the bits of
the latents come from a per-level Laplace model of the latents plus uniform noise (the usual
differentiable proxy); the last `--final` share of the steps rounds the latents (straight-through).
Rate: the latents rounded to integers and the MLP weights quantized (step 2**-8, outputs 2**-6),
each tensor entropy-coded by the codec's own coder (bitstream.entropy, model chosen per tensor), plus
64 header bytes. PSNR: of the MLP evaluated on the rounded latents and quantized weights. One JSON line.
This is a probe, not a file format: nothing here is stored as an `.inr`.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bitstream.entropy import choose_model, encode_tensors
from codec.latent_encoder import laplace_bits

HEADER_BYTES = 64  #: a generous guess at what a header for this family would take


def sample_levels(latents: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """(H*W, levels) bilinear samples of each (1, 1, h_l, w_l) grid at the pixel centres."""
    ys = (2 * torch.arange(height, dtype=torch.float32) + 1) / height - 1
    xs = (2 * torch.arange(width, dtype=torch.float32) + 1) / width - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    where = torch.stack([gx, gy], dim=-1)[None]  # (1, H, W, 2) as (x, y)
    feats = [F.grid_sample(lat, where, mode="bilinear", padding_mode="border", align_corners=False) for lat in latents]
    return torch.cat(feats, dim=1)[0].reshape(len(latents), -1).T


#: causal neighbours (row, column offsets) a context model sees: already decoded in raster order
CONTEXT_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (-2, 0), (0, -2), (-2, -1), (-1, -2))


def causal_context(grid: torch.Tensor) -> torch.Tensor:
    """(h*w, len(CONTEXT_OFFSETS)) neighbours of every latent of a (1, 1, h, w) grid (0 outside)."""
    h, w = grid.shape[-2:]
    padded = F.pad(grid, (2, 2, 2, 0))  # left, right, top, bottom
    cols = [padded[0, 0, 2 + dy: 2 + dy + h, 2 + dx: 2 + dx + w].reshape(-1) for dy, dx in CONTEXT_OFFSETS]
    return torch.stack(cols, dim=1)


def context_bits(grid: torch.Tensor, arm: torch.nn.Module) -> torch.Tensor:
    """Bits of every latent under a Laplace whose mean and scale the context model predicts."""
    out = arm(causal_context(grid))
    mu, log_scale = out[:, 0], out[:, 1]
    return laplace_bits(grid.reshape(-1) - mu, log_scale)


def quantize_tensor(t: torch.Tensor, step: float) -> np.ndarray:
    return torch.round(t.detach() / step).to(torch.int64).numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latent_probe", description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--levels", type=int, default=7)
    p.add_argument("--hidden", type=int, default=24)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lam", type=float, default=0.002, help="weight of the rate (bits per pixel) in the loss")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--final", type=float, default=0.2, help="share of the steps with rounded latents")
    p.add_argument("--context", action="store_true",
                   help="a context model (8 causal neighbours -> 16 -> 16 -> mean, log scale) instead of one Laplace per "
                        "level; its rate is then the model's estimate (the coder has no such model yet)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    pixels = np.asarray(Image.open(a.image).convert("RGB"))
    height, width, _ = pixels.shape
    target = torch.from_numpy(pixels.reshape(-1, 3).astype(np.float32)) / 127.5 - 1.0
    latents = [torch.zeros(1, 1, math.ceil(height / 2**l), math.ceil(width / 2**l), requires_grad=True)
               for l in range(a.levels)]
    dims = [a.levels] + [a.hidden] * a.layers + [3]
    mlp = torch.nn.Sequential(*[m for i in range(len(dims) - 1) for m in
                                ([torch.nn.Linear(dims[i], dims[i + 1])] + ([torch.nn.GELU()] if i < len(dims) - 2 else []))])
    log_scales = torch.zeros(a.levels, requires_grad=True)
    n_ctx = len(CONTEXT_OFFSETS)
    arm = torch.nn.Sequential(torch.nn.Linear(n_ctx, 16), torch.nn.GELU(), torch.nn.Linear(16, 16), torch.nn.GELU(),
                              torch.nn.Linear(16, 2))
    rate_params = list(arm.parameters()) if a.context else [log_scales]
    opt = torch.optim.Adam([{"params": latents, "lr": a.lr}, {"params": list(mlp.parameters()) + rate_params, "lr": a.lr / 2}])
    n_pix = height * width
    t0 = time.time()
    final_from = int(a.steps * (1 - a.final))
    for step in range(a.steps):
        for g, base in zip(opt.param_groups, (a.lr, a.lr / 2)):
            g["lr"] = base * (0.5 * (1 + math.cos(math.pi * step / a.steps)) * 0.95 + 0.05)
        if step < final_from:
            used = [lat + torch.rand_like(lat) - 0.5 for lat in latents]
        else:
            used = [lat + (torch.round(lat) - lat).detach() for lat in latents]
        feats = sample_levels(used, height, width)
        mse = torch.mean((mlp(feats) - target) ** 2)
        if a.context:
            bits = sum(context_bits(u, arm).sum() for u in used)
        else:
            bits = sum(laplace_bits(u, log_scales[l]).sum() for l, u in enumerate(used))
        loss = mse + a.lam * bits / n_pix
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    fit_seconds = time.time() - t0
    with torch.no_grad():
        q_latents = [quantize_tensor(lat, 1.0) for lat in latents]
        weights = [m for m in mlp if isinstance(m, torch.nn.Linear)]
        q_weights, w_steps = [], []
        for i, lin in enumerate(weights):
            step = 2.0**-6 if i == len(weights) - 1 else 2.0**-8
            for t in (lin.weight, lin.bias):
                q_weights.append(quantize_tensor(t, step))
                w_steps.append(step)
        k = 0
        for lin in weights:  # evaluate with what a decoder would get
            lin.weight.copy_(torch.from_numpy(q_weights[k]).float() * w_steps[k])
            lin.bias.copy_(torch.from_numpy(q_weights[k + 1]).float() * w_steps[k + 1])
            k += 2
        feats = sample_levels([torch.from_numpy(q).float() for q in q_latents], height, width)
        out = ((mlp(feats).clamp(-1, 1) + 1) * 127.5).round().clamp(0, 255)
        mse255 = float(torch.mean((out - torch.from_numpy(pixels.reshape(-1, 3).astype(np.float32))) ** 2))
        estimated_latent_bits = None
        if a.context:  # the model's own estimate of the rounded latents' bits, plus 16 bits per context-model weight
            estimated_latent_bits = float(sum(context_bits(torch.from_numpy(q).float(), arm).sum() for q in q_latents))
            estimated_latent_bits += 16 * sum(t.numel() for t in arm.parameters())
    tensors = q_latents + q_weights
    payload = encode_tensors([t.astype(np.int32) for t in tensors], [choose_model(t) for t in tensors])
    total = len(payload) + HEADER_BYTES + 4 * len(tensors)  # 4 bytes of model parameters per tensor, about
    latent_bytes = len(encode_tensors([t.astype(np.int32) for t in q_latents], [choose_model(t) for t in q_latents]))
    if estimated_latent_bits is not None:  # replace the latents' coded bytes by the context model's estimate
        total = total - latent_bytes + math.ceil(estimated_latent_bits / 8)
        latent_bytes = math.ceil(estimated_latent_bits / 8)
    print(json.dumps({"image": a.image.rsplit("/", 1)[-1], "context": a.context,
                      "rate": "context-model estimate for the latents" if a.context else "entropy-coded bytes",
                      "levels": a.levels, "mlp": dims, "lam": a.lam, "steps": a.steps,
                      "bpp": 8 * total / n_pix, "latent_bpp": 8 * latent_bytes / n_pix,
                      "psnr": 10 * math.log10(255**2 / mse255), "fit_seconds": round(fit_seconds, 1),
                      "nonzero_latents": int(sum((q != 0).sum() for q in q_latents)),
                      "macs_per_pixel": sum(dims[i] * dims[i + 1] for i in range(len(dims) - 1))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
