"""Many encodes at once: the SIRENs of several images stacked into one batched network.

Images whose encodes plan the same network and steps (same size, channels and target rate) are
fitted together: every layer's weights are stacked to (images, out, in) and applied with batched
matrix products, so one GPU step trains them all. The loss is the sum of the per-image MSEs and
Adam works element by element, so each image's network follows the same updates as in a single
encode, up to float rounding (the matrix products' summation order, and omega0 applied inside the
product instead of after it). Quantization is chosen per image, the
quantization-aware fine-tuning runs stacked again, and each file is finished, decoded and checked
exactly as in :func:`codec.encoding.encode_pixels`; an image whose stacked fit did not learn is
encoded again on its own (with the single encoder's restarts).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import torch

import bitstream

from ..config import EncoderConfig
from ..devices import resolve_device
from ..errors import OptionError
from ..families.siren.model import Siren
from ..progress import Progress
from .common import EncodeResult, image_tensors
from .fitting import (
    HEALTHY_RATIO, LOSS_SMOOTHING, MAX_ROLLBACKS, ROLLBACK_LR_CUT, SNAPSHOT_EVERY, SPIKE_RATIO, Phase, adam_moments,
    lr_factor, lr_scales, warmup_steps,
)
from .mlp import (
    CHECK_FRACTION, FLAT_BAR, FLAT_IMAGE_MSE, MIN_CHECKED_STEPS, EncodePlan, choose_quantization, finish_file,
    new_network, plan_encode,
)
from .mlp import encode as encode_mlp
from .quantization import fake_quantize

#: bytes of activations one image may keep for the backward pass per stacked step (GPU memory guard)
DEFAULT_GROUP_BYTES = 40 * 2**30


class StackedSiren:
    """The parameters of several same-shape SIRENs, stacked on a leading image axis, in file order."""

    def __init__(self, models: list[Siren]):
        first = models[0].parameters_in_file_order()
        self.omega0 = models[0].sines[0].omega0
        self.params = [torch.stack([m.parameters_in_file_order()[k].detach() for m in models]).requires_grad_()
                       for k in range(len(first))]

    def forward(self, params: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """(images, N, 2) coordinates -> (images, N, channels) values."""
        h = coords
        layers = len(params) // 2
        for k in range(layers):
            weight, bias = params[2 * k], params[2 * k + 1]
            if k < layers - 1:  # omega0 (W h + b) as the product's own scaling: one pass less over the activations
                h = torch.sin(torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2), beta=self.omega0, alpha=self.omega0))
            else:
                h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        return h

    def copy_into(self, index: int, model: Siren) -> Siren:
        """Load image `index`'s parameters into `model` (returned)."""
        with torch.no_grad():
            for p, stacked in zip(model.parameters_in_file_order(), self.params):
                p.copy_(stacked[index])
        return model


def _per_image_mse(stack: StackedSiren, params, coords, targets, chunk: int = 1 << 16) -> torch.Tensor:
    """(images,) whole-image MSE without gradients, in pixel chunks."""
    total = torch.zeros(coords.shape[0], device=coords.device)
    with torch.no_grad():
        for start in range(0, coords.shape[1], chunk):
            pred = stack.forward(params, coords[:, start:start + chunk])
            total += ((pred - targets[:, start:start + chunk]) ** 2).sum(dim=(1, 2))
    return total / targets[0].numel()


class StackedGuard:
    """The divergence guard of codec.fitting (see SPIKE_RATIO) for every image of a stack at once.

    Runs on the device without waiting for it: each image has its own smoothed and lowest loss,
    snapshot (weights and Adam moments), learning-rate scale and rollback count. An image whose batch
    loss spikes gets its step undone, goes back to its snapshot and continues at a lower rate (Adam's
    step is shared, so an image's rate is scaled by shrinking its own update after the step); the
    other images are untouched, bit for bit.
    """

    def __init__(self, params: list[torch.Tensor], opt: torch.optim.Optimizer, images: int):
        self.params, self.opt = params, opt
        device = params[0].device
        self.smooth = torch.full((images,), math.inf, device=device)
        self.lowest = torch.full((images,), math.inf, device=device)
        self.lr_scale = torch.ones(images, device=device)
        self.rollbacks = torch.zeros(images, dtype=torch.int32, device=device)
        self.saved = [p.detach().clone() for p in params]
        self.saved_moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        self.before = None

    @staticmethod
    def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return mask.view(-1, *([1] * (like.dim() - 1)))

    def before_step(self) -> None:
        self.before = [p.detach().clone() for p in self.params]

    def after_step(self, step: int, loss: torch.Tensor) -> None:
        """After opt.step(): scale each image's update by its rate, then record `loss` (images,), the
        batch loss of the weights before the step, rolling images whose smoothed loss spiked back to
        their snapshots (one pass over the tensors)."""
        with torch.no_grad():
            loss = torch.nan_to_num(loss, nan=math.inf)
            smooth = torch.where(torch.isinf(self.smooth), loss,
                                 LOSS_SMOOTHING * self.smooth + (1 - LOSS_SMOOTHING) * loss)
            spike = (smooth > SPIKE_RATIO * self.lowest) & (self.rollbacks < MAX_ROLLBACKS)
            slowed = self.lr_scale < 1
            for p, b, w, saved in zip(self.params, self.before, self.saved, self.saved_moments):
                spiked = self._rows(spike, p)
                stepped = torch.where(self._rows(slowed, p), torch.lerp(b, p, self._rows(self.lr_scale, p)), p)
                p.copy_(torch.where(spiked, w, stepped))
                for m, m_saved in zip(adam_moments(self.opt, p), saved):
                    m.copy_(torch.where(spiked, m_saved, m))
            self.lr_scale = torch.where(spike, self.lr_scale * ROLLBACK_LR_CUT, self.lr_scale)
            self.rollbacks += spike.to(torch.int32)
            self.smooth = torch.where(spike, self.lowest, smooth)
            self.lowest = torch.minimum(self.lowest, self.smooth)
            if step % SNAPSHOT_EVERY == 0:
                healthy = self.smooth <= HEALTHY_RATIO * self.lowest
                for p, w, saved in zip(self.params, self.saved, self.saved_moments):
                    rows = self._rows(healthy, p)
                    for live, kept in zip((p, *adam_moments(self.opt, p)), (w, *saved)):
                        kept.copy_(torch.where(rows, live, kept))


def fit_stacked(stack: StackedSiren, coords: torch.Tensor, targets: torch.Tensor, phase: Phase, *,
                transform=None, check_mse: torch.Tensor | None = None, progress: Progress,
                batch_pixels: int | None = None, generator: torch.Generator | None = None,
                eval_every: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation phase of every stacked network.

    Each step uses the whole images, or (`batch_pixels` below the pixel count) the same random
    pixels of every image, drawn from `generator` as a single encode draws them; then the best
    weights are judged on whole-image evaluations every `eval_every` steps and at the end.
    The stack ends holding each image's best weights (whole-image MSE, transform applied).
    `check_mse` (images,): at `phase.check_step` an image whose MSE is not below its bar is marked
    failed (its fit goes on, but its result is not used). Returns (best MSE per image, failed mask).
    The loop never waits for the GPU except for progress lines.
    """
    params = stack.params
    scales = phase.lr_scales or (1.0,) * len(params)
    opt = torch.optim.Adam([{"params": [p], "lr": phase.lr * s, "scale": s} for p, s in zip(params, scales)])
    images = coords.shape[0]
    best_mse = torch.full((images,), math.inf, device=coords.device)
    best = [p.detach().clone() for p in params]
    failed = torch.zeros(images, dtype=torch.bool, device=coords.device)
    guard = StackedGuard(params, opt, images)
    n = coords.shape[1]
    full_batch = batch_pixels is None or batch_pixels >= n
    for step in range(1, phase.steps + 1):
        factor = lr_factor(step, phase)
        for group in opt.param_groups:
            group["lr"] = phase.lr * group["scale"] * factor
        used = transform(params) if transform is not None else params
        if full_batch:
            pred, tgt = stack.forward(used, coords), targets
        else:
            idx = torch.randint(0, n, (batch_pixels,), generator=generator, device=generator.device)
            pred, tgt = stack.forward(used, coords[:, idx]), targets[:, idx]
        per_image = ((pred - tgt) ** 2).mean(dim=(1, 2))
        if full_batch:
            current = per_image.detach()  # whole-image MSE of the weights before this step
        elif step % eval_every == 1 or step == phase.check_step:
            current = _per_image_mse(stack, [u.detach() for u in used], coords, targets)
        else:
            current = None
        if current is not None:
            improved = current < best_mse  # a non-finite loss never improves
            best_mse = torch.where(improved, current, best_mse)
            with torch.no_grad():
                for b, p in zip(best, params):
                    b.copy_(torch.where(improved.view(-1, *([1] * (p.dim() - 1))), p, b))
        if step == phase.check_step and check_mse is not None:
            failed |= ~(current < check_mse)
        opt.zero_grad(set_to_none=True)
        torch.nan_to_num(per_image, nan=0.0, posinf=0.0).sum().backward()  # a diverged image stops moving
        guard.before_step()
        opt.step()
        guard.after_step(step, per_image.detach())
        if progress.enabled and (step % 100 == 0 or step == phase.steps):
            worst = float(best_mse.max())
            progress.update(phase.name, step, phase.steps, loss=worst, psnr=10 * math.log10(4 / worst) if worst > 0 else math.inf,
                            left=None)
    with torch.no_grad():
        final = _per_image_mse(stack, transform(params) if transform is not None else params, coords, targets)
        improved = final < best_mse
        best_mse = torch.where(improved, final, best_mse)
        for b, p in zip(best, params):
            p.copy_(torch.where(improved.view(-1, *([1] * (p.dim() - 1))), p, b))
    progress.close()
    return best_mse, failed | ~torch.isfinite(best_mse)


def group_size(plan: EncodePlan, images: int, group_bytes: int = DEFAULT_GROUP_BYTES) -> int:
    """How many of `images` encodes of this plan share one stacked step: the activations a step keeps
    for its backward pass (about 2 per sine layer of batch x width floats) stay under `group_bytes`."""
    width, height, _, hidden_width, hidden_layers, _ = plan.dims
    per_image = 4 * min(width * height, plan.batch_pixels) * hidden_width * (2 * hidden_layers + 1)
    return max(1, min(images, group_bytes // max(1, per_image)))


def _group_key(plan: EncodePlan) -> tuple:
    """Plans that can share stacked steps: same network, pixel count and steps (the aspect may differ)."""
    width, height, *network = plan.dims
    return (width * height, *network, plan.batch_pixels, tuple(sorted(plan.phase_steps.items())))


def encode_many(images: list[np.ndarray], config: EncoderConfig, *, group_bytes: int = DEFAULT_GROUP_BYTES) -> list[EncodeResult]:
    """Encode several (H, W, C) uint8 arrays; equal plans are fitted together in stacked networks.

    Each result is a complete file as :func:`codec.encoding.encode_pixels` makes it, with the same
    fields; `seconds` is the image's share of its group's time. Steps are fixed (``config.steps``,
    else the device default): no time budget, no pruning. Pixels per step as in a single encode
    (``config.batch_pixels``, else the whole image on a GPU and 16,384 on the CPU), the same random
    pixels of every image of a group. `group_bytes` bounds the activations a
    stacked step keeps for its backward pass, and so how many images share one step.
    """
    cfg = config.validated()
    if cfg.arch == "auto":  # stacked fits are SIRENs only: "auto" means the SIREN here
        cfg = replace(cfg, arch="siren")
    if cfg.arch_id != bitstream.SIREN:
        raise OptionError(f"stacked encoding fits SIRENs only, not architecture {cfg.arch!r}")
    if cfg.sparsity > 0:
        raise OptionError("stacked encoding does not prune: use sparsity 0")
    if cfg.time_budget is not None:
        raise OptionError("stacked encoding runs a fixed number of steps: give steps, not a time budget")
    device = resolve_device(cfg.device)
    if device.type == "cpu" and cfg.steps is None:
        raise OptionError("stacked encoding on the CPU needs a step count (the CPU default is a time budget)")
    plans = [plan_encode(p.shape, cfg, device) for p in images]
    groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(_group_key(plan), []).append(i)
    results: list[EncodeResult | None] = [None] * len(images)
    for members in groups.values():
        size = group_size(plans[members[0]], len(members), group_bytes)
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            for i, result in zip(chunk, _encode_group([images[i] for i in chunk], [plans[i] for i in chunk], cfg, device)):
                results[i] = result
    return results


def _encode_group(pixels_list: list[np.ndarray], plans: list[EncodePlan], cfg: EncoderConfig, device) -> list[EncodeResult]:
    t0 = time.monotonic()
    progress = Progress(enabled=cfg.progress)
    plan = plans[0]  # the network and steps of every plan in the group
    _, _, channels, hidden_width, hidden_layers, omega0 = plan.dims
    tensors = [image_tensors(p, device) for p in pixels_list]
    coords = torch.stack([c for c, _, _ in tensors])
    targets = torch.stack([t for _, t, _ in tensors])
    flat = [f for _, _, f in tensors]
    models, init = [], "random"
    for own in plans:  # as in a single encode: every network starts from the same seeded (or meta-learned) init
        model, init = new_network(own.arch, own.dims, cfg.seed, device, meta=cfg.init == "meta")
        models.append(model)
    stack = StackedSiren(models)
    fit_steps = plan.phase_steps["fit"]
    warmup = warmup_steps(fit_steps, cfg.mlp.warmup_fraction)
    check_step = max(round(fit_steps * CHECK_FRACTION), 2 * warmup)
    checked = fit_steps >= MIN_CHECKED_STEPS and check_step <= fit_steps // 2
    bars = torch.tensor([f * FLAT_BAR if f > FLAT_IMAGE_MSE else math.inf for f in flat], device=device)
    phase = Phase("fit", fit_steps, cfg.fit_lr, lr_scales=lr_scales(models[0], cfg.mlp.lr_scaling),
                  warmup_steps=warmup, check_step=check_step if checked else None)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)  # the pixel draws of a single encode
    batching = dict(batch_pixels=plan.batch_pixels, generator=generator)
    _, failed = fit_stacked(stack, coords, targets, phase, check_mse=bars if checked else None, progress=progress,
                            **batching)
    failed = failed.tolist()
    rates = []
    for i, model in enumerate(models):
        stack.copy_into(i, model)
        rates.append(choose_quantization(model, plans[i], cfg, progress))
    if plan.phase_steps["qat"]:
        qsteps = [r.steps_fn(m.parameters_in_file_order(), r.level) for r, m in zip(rates, models)]
        step_tensors = [torch.tensor([s[k] for s in qsteps], dtype=torch.float32, device=device)
                        for k in range(len(stack.params))]

        def transform(params):
            return [fake_quantize(p, s.view(-1, *([1] * (p.dim() - 1)))) for p, s in zip(params, step_tensors)]

        fit_stacked(stack, coords, targets, Phase("qat", plan.phase_steps["qat"], cfg.mlp.qat_lr), transform=transform,
                    progress=progress, **batching)
    steps = fit_steps + plan.phase_steps["qat"]
    share = (time.monotonic() - t0) / len(pixels_list)
    results = []
    for i, (pixels, model, rate, own) in enumerate(zip(pixels_list, models, rates, plans)):
        t_image = time.monotonic()
        if failed[i]:  # the single encoder restarts with a lower learning rate and other seeds
            progress.message(f"stacked fit of image {i} did not learn; encoding it on its own")
            single = encode_mlp(pixels, replace(cfg, progress=False))
            results.append(replace(single, seconds=single.seconds + share))
            continue
        if plan.phase_steps["qat"]:
            stack.copy_into(i, model)
        data, quality, fallback, qsteps = finish_file(model, own, cfg, rate, pixels, flat_mse=flat[i], fit_failed=False,
                                                      device=device, progress=progress)
        height, width = pixels.shape[:2]
        results.append(EncodeResult(
            data=data, width=width, height=height, channels=channels, bytes=len(data),
            bpp=8 * len(data) / (width * height), psnr=quality, steps=steps,
            seconds=share + time.monotonic() - t_image, device=str(device), seed=cfg.seed,
            hidden_width=hidden_width, hidden_layers=hidden_layers, quant_step=qsteps[0], sparsity=0.0,
            target_bpp=cfg.target_bpp, fit_attempts=1, time_capped=False, flat_fallback=fallback, init=init))
    return results
