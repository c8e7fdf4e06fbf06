"""Optimising a SIREN to one image: Adam, a cosine schedule driven by steps or time, best weights kept."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import functional_call

from .progress import Progress
from .siren import Siren

#: model parameters in file order -> the parameters the forward pass uses (e.g. fake-quantized)
Transform = Callable[[list[torch.Tensor]], list[torch.Tensor]]


@dataclass(frozen=True)
class Phase:
    """One optimisation phase: at most `steps` steps and `seconds` seconds."""

    name: str
    steps: int
    seconds: float | None
    lr: float
    final_lr_ratio: float = 0.05


@dataclass(frozen=True)
class PhaseResult:
    steps: int
    best_mse: float  # on [-1, 1] values, whole image, with the transform applied


def mse_to_psnr(mse: float) -> float:
    """PSNR in dB of an MSE measured on values scaled to [-1, 1] (8-bit peak)."""
    return math.inf if mse <= 0 else 10.0 * math.log10(4.0 / mse)


def _forward(model: Siren, params: list[torch.Tensor], transform: Transform | None, coords: torch.Tensor) -> torch.Tensor:
    if transform is None:
        return model(coords)
    used = transform(params)
    names = [n for n, _ in _named_in_file_order(model)]
    return functional_call(model, dict(zip(names, used)), (coords,))


def _named_in_file_order(model: Siren) -> list[tuple[str, torch.nn.Parameter]]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [(by_id[id(p)], p) for p in model.parameters_in_file_order()]


def full_mse(model: Siren, coords: torch.Tensor, target: torch.Tensor, *, transform: Transform | None = None, chunk: int = 1 << 16) -> float:
    """Whole-image MSE, evaluated in chunks without gradients."""
    params = model.parameters_in_file_order()
    total = 0.0
    with torch.no_grad():
        for start in range(0, coords.shape[0], chunk):
            pred = _forward(model, params, transform, coords[start : start + chunk])
            total += float(((pred - target[start : start + chunk]) ** 2).sum())
    return total / target.numel()


def optimise(
    model: Siren,
    coords: torch.Tensor,
    target: torch.Tensor,
    phase: Phase,
    *,
    batch_pixels: int,
    generator: torch.Generator,
    transform: Transform | None = None,
    masks: list[torch.Tensor] | None = None,
    progress: Progress,
    eval_every: int = 50,
) -> PhaseResult:
    """Run one phase; on return the model holds the best weights seen (whole-image MSE)."""
    params = model.parameters_in_file_order()
    opt = torch.optim.Adam(params, lr=phase.lr)
    n = coords.shape[0]
    full_batch = batch_pixels >= n
    best_mse, best_state = math.inf, [p.detach().clone() for p in params]
    start = time.monotonic()
    step = 0
    eval_every = 1 if full_batch else eval_every
    for step in range(1, phase.steps + 1):
        elapsed = time.monotonic() - start
        frac = step / phase.steps
        if phase.seconds is not None:
            if elapsed >= phase.seconds and step > 1:
                step -= 1
                break
            frac = max(frac, elapsed / phase.seconds)
        lr = phase.lr * (phase.final_lr_ratio + (1 - phase.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for group in opt.param_groups:
            group["lr"] = lr
        if full_batch:
            pred, tgt = _forward(model, params, transform, coords), target
        else:
            idx = torch.randint(0, n, (batch_pixels,), generator=generator, device=generator.device)
            pred, tgt = _forward(model, params, transform, coords[idx]), target[idx]
        loss = torch.mean((pred - tgt) ** 2)
        if full_batch:
            current = float(loss.detach())  # whole-image MSE of the weights before this step
        elif step % eval_every == 1 or eval_every == 1:
            current = full_mse(model, coords, target, transform=transform)
        else:
            current = math.inf
        if current < best_mse:
            best_mse = current
            best_state = [p.detach().clone() for p in params]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if masks is not None:
            with torch.no_grad():
                for p, m in zip(params, masks):
                    p.mul_(m)
        elapsed = time.monotonic() - start
        left = elapsed / step * (phase.steps - step)
        if phase.seconds is not None:
            left = min(left, phase.seconds - elapsed)
        progress.update(phase.name, step, phase.steps, loss=float(loss.detach()), psnr=mse_to_psnr(float(loss.detach())), left=left)
    final = full_mse(model, coords, target, transform=transform)
    if final < best_mse:
        best_mse = final
    else:
        with torch.no_grad():
            for p, b in zip(params, best_state):
                p.copy_(b)
    progress.update(phase.name, step, phase.steps, loss=best_mse, psnr=mse_to_psnr(best_mse), left=0.0, force=True)
    progress.close()
    return PhaseResult(steps=step, best_mse=best_mse)
