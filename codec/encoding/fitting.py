"""Optimising a network to one image: Adam with warm-up and a cosine schedule over a fixed number of
steps, a wall-clock cap that can only stop a phase early, best weights kept, a check that the
fit is learning, and a guard that rolls a fit back when its loss spikes.

The schedule depends on step counts alone, never on the clock, so the same inputs, seed, device
and step count give the same weights; the cap (``Phase.deadline``) only cuts a phase short, and
the result says when it did.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import functional_call

from ..progress import Progress

#: model parameters in file order -> the parameters the forward pass uses (e.g. fake-quantized)
Transform = Callable[[list[torch.Tensor]], list[torch.Tensor]]


@dataclass(frozen=True)
class Phase:
    """One optimisation phase.

    lr_scales: one multiplier of `lr` per tensor in file order (None: all 1).
    warmup_steps: the learning rate rises linearly over these first steps (Adam's first updates
        are sign-like and full-size; without a warm-up they throw deep SIRENs into a state that
        never learns).
    deadline: a time.monotonic() value; the phase stops early once it has passed.
    check_step, check_mse: at step `check_step` the whole-image MSE must be below `check_mse`,
        otherwise the phase stops and reports that the fit did not learn.
    """

    name: str
    steps: int
    lr: float
    lr_scales: tuple[float, ...] | None = None
    warmup_steps: int = 0
    final_lr_ratio: float = 0.05
    deadline: float | None = None
    check_step: int | None = None
    check_mse: float | None = None


@dataclass(frozen=True)
class PhaseResult:
    steps: int
    best_mse: float  # on [-1, 1] values, whole image, with the transform applied
    stopped_early: bool = False  # the deadline cut the phase short
    failure: str | None = None  # why the fit was abandoned (did not learn, diverged), else None
    rollbacks: int = 0  # loss spikes the divergence guard rolled back


def mse_to_psnr(mse: float) -> float:
    """PSNR in dB of an MSE measured on values scaled to [-1, 1] (8-bit peak)."""
    if not math.isfinite(mse):
        return -math.inf
    return math.inf if mse <= 0 else 10.0 * math.log10(4.0 / mse)


#: The divergence guard. SIRENs on random pixel batches can blow up near the peak learning rate (a
#: 0.75 bpp Kodak network, 85x7 at lr 2e-3 on 16,384-pixel batches, fell from 21.8 dB at step 70 to
#: 14.5 dB at step 105 and ended at 19.7 dB after 2000 steps). The guard smooths the batch
#: loss (LOSS_SMOOTHING); when the smoothed loss rises above SPIKE_RATIO x its lowest so far, the fit
#: goes back to its last healthy snapshot (weights and Adam's moments, taken every SNAPSHOT_EVERY
#: steps while the smoothed loss is within HEALTHY_RATIO of its lowest) and continues at
#: ROLLBACK_LR_CUT times its learning rate, at most MAX_ROLLBACKS times a phase. One batch 10x worse
#: trips it at once, a steady slide within a few steps; batch noise does not (the smoothed loss of
#: 16,384-pixel batches moves by about 1 %). A fit that never trips it is untouched, step for step.
SPIKE_RATIO = 1.5
HEALTHY_RATIO = 1.1
SNAPSHOT_EVERY = 10
ROLLBACK_LR_CUT = 0.5
MAX_ROLLBACKS = 4
LOSS_SMOOTHING = 0.9


def adam_moments(opt: torch.optim.Optimizer, param: torch.Tensor) -> tuple:
    """Adam's two moment tensors of `param`, or () before its first step."""
    state = opt.state.get(param, {})
    return (state["exp_avg"], state["exp_avg_sq"]) if "exp_avg" in state else ()


class DivergenceGuard:
    """Spike detection and rollback for one network's fit (see SPIKE_RATIO); call after each step."""

    def __init__(self, params: list[torch.Tensor], opt: torch.optim.Optimizer):
        self.params, self.opt = params, opt
        self.smooth = self.lowest = math.inf
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.saved = [(p.detach().clone(),) for p in params]  # weights, then Adam's two moments once it has them

    def after_step(self, step: int, loss: float) -> bool:
        """Record the batch loss of the weights before this step (finite); True if the smoothed loss
        spiked and the fit was rolled back (the step undone, weights and moments from the last
        healthy snapshot)."""
        smooth = loss if not math.isfinite(self.smooth) else LOSS_SMOOTHING * self.smooth + (1 - LOSS_SMOOTHING) * loss
        if smooth > SPIKE_RATIO * self.lowest and self.rollbacks < MAX_ROLLBACKS:
            with torch.no_grad():
                for p, kept in zip(self.params, self.saved):
                    for k, tensor in enumerate((p, *adam_moments(self.opt, p))):
                        if k < len(kept):
                            tensor.copy_(kept[k])
                        else:  # a snapshot from before Adam's first step: its moments were zero
                            tensor.zero_()
            self.lr_scale *= ROLLBACK_LR_CUT
            self.rollbacks += 1
            self.smooth = self.lowest
            return True
        self.smooth = smooth
        self.lowest = min(self.lowest, self.smooth)
        if step % SNAPSHOT_EVERY == 0 and self.smooth <= HEALTHY_RATIO * self.lowest:
            self.saved = [tuple(t.detach().clone() for t in (p, *adam_moments(self.opt, p))) for p in self.params]
        return False


def warmup_steps(fit_steps: int, fraction: float) -> int:
    """Warm-up steps of a fitting phase: `fraction` of it, at least 50 (when fraction > 0), at most a quarter."""
    if fraction <= 0:
        return 0
    return min(fit_steps // 4, max(50, round(fit_steps * fraction)))


#: layers wider than this get a proportionally smaller fitting learning rate (lr_scaling "width")
LR_REFERENCE_WIDTH = 96


def lr_scales(model: torch.nn.Module, mode: str) -> tuple[float, ...]:
    """Per-tensor learning-rate multipliers in file order (a bias takes its weight's).

    "none": 1 everywhere. "width": a weight whose fan-in is wider than LR_REFERENCE_WIDTH gets
    LR_REFERENCE_WIDTH / fan_in. Adam moves every weight by about the learning rate per step, whatever
    its scale, and a layer sums fan_in such moves: the change of its pre-activation per step grows
    with the width (times omega0 in a sine layer). Past a width, the first steps throw a SIREN into a
    state that never learns (on Kodak 768x512, 8 layers, with warm-up: width 320 stays at a flat
    image's PSNR at lr 1e-3 and learns at 5e-4; width 160 learns at 2e-3). Layers fed by the 2
    coordinates keep the full rate.
    """
    params = model.parameters_in_file_order()
    if mode == "none":
        return (1.0,) * len(params)
    scales, scale = [], 1.0
    for p in params:
        if p.dim() == 2:
            scale = min(1.0, LR_REFERENCE_WIDTH / p.shape[1])
        scales.append(scale)
    return tuple(scales)


def lr_factor(step: int, phase: Phase) -> float:
    """Multiplier of the phase's learning rate at `step` (1-based): linear warm-up, then cosine decay."""
    frac = min(1.0, step / max(1, phase.steps))
    cosine = phase.final_lr_ratio + (1 - phase.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    if phase.warmup_steps > 0 and step <= phase.warmup_steps:
        cosine *= step / phase.warmup_steps
    return cosine


def _named_in_file_order(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [(by_id[id(p)], p) for p in model.parameters_in_file_order()]


def _forward(model, params: list[torch.Tensor], transform: Transform | None, coords: torch.Tensor) -> torch.Tensor:
    if transform is None:
        return model(coords)
    names = [n for n, _ in _named_in_file_order(model)]
    return functional_call(model, dict(zip(names, transform(params))), (coords,))


def full_mse(model, coords: torch.Tensor, target: torch.Tensor, *, transform: Transform | None = None, chunk: int = 1 << 16) -> float:
    """Whole-image MSE, evaluated in chunks without gradients."""
    params = model.parameters_in_file_order()
    total = 0.0
    with torch.no_grad():
        for start in range(0, coords.shape[0], chunk):
            pred = _forward(model, params, transform, coords[start : start + chunk])
            total += float(((pred - target[start : start + chunk]) ** 2).sum())
    return total / target.numel()


def optimise(
    model,
    coords: torch.Tensor,
    target: torch.Tensor,
    phase: Phase,
    *,
    batch_pixels: int,
    generator: torch.Generator,
    transform: Transform | None = None,
    masks: list[torch.Tensor] | None = None,
    progress: Progress,
    eval_every: int = 250,
) -> PhaseResult:
    """Run one phase; on return the model holds the best weights seen (whole-image MSE).

    Random pixel batches (CPU) are scored on the whole image every `eval_every` steps and at the
    end; a whole-image batch (GPU) is scored at every step for free.
    """
    params = model.parameters_in_file_order()
    scales = phase.lr_scales or (1.0,) * len(params)
    opt = torch.optim.Adam([{"params": [p], "lr": phase.lr * s, "scale": s} for p, s in zip(params, scales)])
    n = coords.shape[0]
    full_batch = batch_pixels >= n
    best_mse, best_state = math.inf, [p.detach().clone() for p in params]
    guard = DivergenceGuard(params, opt)
    start = time.monotonic()
    step, stopped_early, failure = 0, False, None
    for step in range(1, phase.steps + 1):
        if phase.deadline is not None and step > 1 and time.monotonic() >= phase.deadline:
            step -= 1
            stopped_early = True
            break
        factor = lr_factor(step, phase)
        for group in opt.param_groups:
            group["lr"] = phase.lr * group["scale"] * factor * guard.lr_scale
        if full_batch:
            pred, tgt = _forward(model, params, transform, coords), target
        else:
            idx = torch.randint(0, n, (batch_pixels,), generator=generator, device=generator.device)
            pred, tgt = _forward(model, params, transform, coords[idx]), target[idx]
        loss = torch.mean((pred - tgt) ** 2)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            failure = f"the loss became {loss_value} at step {step}"
            break
        if full_batch:
            current = loss_value  # whole-image MSE of the weights before this step
        elif step % eval_every == 1 or step == phase.check_step:
            current = full_mse(model, coords, target, transform=transform)
        else:
            current = math.inf
        if current < best_mse:
            best_mse = current
            best_state = [p.detach().clone() for p in params]
        if step == phase.check_step and phase.check_mse is not None and not current < phase.check_mse:
            failure = (f"no better than a flat image after {step} steps "
                       f"(PSNR {mse_to_psnr(current):.2f} dB, flat-image bar {mse_to_psnr(phase.check_mse):.2f} dB)")
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if masks is not None:
            with torch.no_grad():
                for p, m in zip(params, masks):
                    p.mul_(m)
        if guard.after_step(step, loss_value):
            progress.message(f"{phase.name}: loss spiked at step {step}; back to the last healthy weights, "
                             f"learning rate x{guard.lr_scale:g}")
            continue
        elapsed = time.monotonic() - start
        left = elapsed / step * (phase.steps - step)
        if phase.deadline is not None:
            left = min(left, phase.deadline - time.monotonic())
        progress.update(phase.name, step, phase.steps, loss=loss_value, psnr=mse_to_psnr(loss_value), left=max(0.0, left))
    if failure is None:
        final = full_mse(model, coords, target, transform=transform)
        if final < best_mse:
            best_mse = final
            best_state = None
    if best_state is not None:
        with torch.no_grad():
            for p, b in zip(params, best_state):
                p.copy_(b)
    progress.update(phase.name, step, phase.steps, loss=best_mse, psnr=mse_to_psnr(best_mse), left=0.0, force=True)
    progress.close()
    return PhaseResult(steps=step, best_mse=best_mse, stopped_early=stopped_early, failure=failure,
                       rollbacks=guard.rollbacks)
