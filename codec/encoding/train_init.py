"""Meta-learn a SIREN's starting weights with Reptile (Nichol et al. 2018) on the training photos.

    python -m codec.encoding.train_init --width 58 --layers 6 --iterations 400 --out codec/encoding/inits

Each iteration copies the current init, fits it to one training image (chosen by the seeded
generator) for `--inner-steps` Adam steps on random pixel batches, as the CPU encoder does (its
learning rate and per-layer scales, `--inner-lr`), and moves the init a step `--outer-lr` (decaying
linearly to 0) towards the fitted weights. Never trains on Kodak: the images come from
`../shared/data/train`. Every `--eval-every` iterations it reports the mean PSNR after the inner
steps on the held-out last `--held-out` images, from the init and from a random SIREN init.
Writes ``siren_c3_w{W}_l{L}.npz`` (the tensors in file order, omega0, and the settings as JSON),
the file `codec.encoding.meta_init` loads. Same arguments and torch version give the same file.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..coords import grid
from ..families.siren.model import Siren
from .fitting import lr_scales, mse_to_psnr
from .meta_init import init_name

DEFAULT_TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


def load_images(folder: Path, limit: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(coordinates, targets in [-1, 1]) of every PNG/JPEG in `folder`, sorted by name."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:limit]
    if not paths:
        raise SystemExit(f"train_init: no images in {folder}")
    out = []
    for path in paths:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        h, w, _ = pixels.shape
        out.append((grid(h, w), torch.from_numpy(pixels.reshape(-1, 3).astype(np.float32)) / 127.5 - 1.0))
    return out


def adapt(model: Siren, coords, target, *, steps: int, lr: float, scales, batch: int, generator) -> float:
    """`steps` Adam steps on random pixel batches; returns the whole-image MSE after them."""
    params = model.parameters_in_file_order()
    opt = torch.optim.Adam([{"params": [p], "lr": lr * s} for p, s in zip(params, scales)])
    n = coords.shape[0]
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch, n),), generator=generator)
        loss = torch.mean((model(coords[idx]) - target[idx]) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(torch.mean((model(coords) - target) ** 2))


def _copy(src: Siren, dst: Siren) -> Siren:
    with torch.no_grad():
        for a, b in zip(dst.parameters_in_file_order(), src.parameters_in_file_order()):
            a.copy_(b)
    return dst


def held_out_psnr(init: Siren, images, args, generator) -> tuple[float, float]:
    """Mean PSNR after the inner steps on the held-out images: from `init`, and from a random init."""
    meta, rand = [], []
    for k, (coords, target) in enumerate(images):
        for start, out in ((init, meta), (None, rand)):
            torch.manual_seed(10_000 + k)
            model = Siren(channels=3, hidden_width=args.width, hidden_layers=args.layers, omega0=args.omega0)
            if start is not None:
                _copy(start, model)
            out.append(mse_to_psnr(adapt(model, coords, target, steps=args.inner_steps, lr=args.inner_lr,
                                         scales=lr_scales(model, "width"), batch=args.batch, generator=generator)))
    return float(np.mean(meta)), float(np.mean(rand))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.encoding.train_init", description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--omega0", type=float, default=30.0)
    p.add_argument("--data", type=Path, default=DEFAULT_TRAIN, help="training photos (never Kodak)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--held-out", type=int, default=4, help="last N images: evaluation only")
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--inner-steps", type=int, default=24)
    p.add_argument("--inner-lr", type=float, default=5e-4)
    p.add_argument("--outer-lr", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the .npz")
    args = p.parse_args(argv)
    t0 = time.time()
    images = load_images(args.data, args.limit)
    held = images[-args.held_out:] if args.held_out else []
    train = images[: len(images) - len(held)] or images
    torch.manual_seed(args.seed)
    init = Siren(channels=3, hidden_width=args.width, hidden_layers=args.layers, omega0=args.omega0)
    work = Siren(channels=3, hidden_width=args.width, hidden_layers=args.layers, omega0=args.omega0)
    scales = lr_scales(init, "width")
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    log = []
    for it in range(args.iterations + 1):
        if held and (it % args.eval_every == 0 or it == args.iterations):
            meta, rand = held_out_psnr(init, held, args, torch.Generator().manual_seed(1))
            log.append({"iteration": it, "held_out_psnr_meta": meta, "held_out_psnr_random": rand,
                        "seconds": time.time() - t0})
            print(json.dumps(log[-1]), flush=True)
        if it == args.iterations:
            break
        coords, target = train[int(rng.integers(len(train)))]
        _copy(init, work)
        adapt(work, coords, target, steps=args.inner_steps, lr=args.inner_lr, scales=scales, batch=args.batch,
              generator=generator)
        eps = args.outer_lr * (1 - it / args.iterations)
        with torch.no_grad():
            for a, b in zip(init.parameters_in_file_order(), work.parameters_in_file_order()):
                a.add_(eps * (b - a))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / init_name(3, args.width, args.layers)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(images=len(train), held_out_images=len(held), torch=torch.__version__, log=log)
    tensors = {f"t{i}": t.detach().numpy().astype(np.float32) for i, t in enumerate(init.parameters_in_file_order())}
    np.savez(path, omega0=np.float32(args.omega0), settings=json.dumps(settings), **tensors)
    print(json.dumps({"wrote": str(path), "seconds": time.time() - t0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
