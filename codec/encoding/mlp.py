"""image -> `.inr` bytes for the coordinate-MLP families (SIREN, Poly-INR): the network sized by the
rate target, fitted (restarted when it does not learn), pruned, quantized at the finest level that
meets the rate, fine-tuned on its quantized weights, entropy-coded and checked against a flat image."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

import bitstream
from bitstream import architectures, multiply_adds, parameter_count

from ..config import EncoderConfig
from ..devices import resolve_device
from ..errors import OptionError
from ..families.registry import build_network, load_weights
from ..progress import Progress
from .common import (
    FLAT_BIAS_STEP, EncodeResult, StepPlan, finest_within, flat_file, image_tensors, keep_or_flat, plan_steps, serialize,
)
from .fitting import Phase, lr_scales, optimise, warmup_steps
from .meta_init import find_init
from .pruning import apply_masks, magnitude_masks
from .quantization import fake_quantize, steps_for_bits, steps_for_level

DEFAULT_BITS = 8.0  #: bit width without a rate target
LEVEL_RANGE = (2.0, 16.0)  #: rate control searches base steps 2**-16 .. 2**-2
DEFAULT_LEVEL = 10.0  #: base step 2**-10 when a preset's target cannot be met
BITS_RANGE = (2.0, 12.0)  #: the "range" scheme (ablation) searches bit widths
LEVEL_TOLERANCE = 0.01  #: the level search stops when the bracket is this narrow
CPU_BATCH_PIXELS = 1 << 14  #: pixels per step on the CPU (the whole image per step on a GPU)
#: (learning-rate factor, seed offset) of each fitting attempt: a fit that does not learn is restarted
FIT_ATTEMPTS = ((1.0, 0), (0.25, 1), (0.0625, 2))
CHECK_FRACTION = 0.2  #: the fit is checked after this share of its steps (and twice the warm-up) ...
FLAT_BAR = 0.8  #: ... and must have at most this share of a flat image's MSE by then (1 dB better)
MIN_CHECKED_STEPS = 200  #: shorter fits are not checked (too few steps to judge)
FLAT_IMAGE_MSE = 1e-6  #: images flatter than this skip the check (a flat image cannot be beaten)
MIN_PLANNED_STEPS = 200  #: the fewest steps a time budget plans
#: under a time budget, rate control sizes the network no larger than one that gets this many steps,
#: and the rate left over buys finer quantization, so quality can only rise with the rate (with fewer
#: steps, larger networks decoded worse than smaller ones at lower rates: benchmarks/DECISIONS.md)
MIN_TRAINED_STEPS = 1330
#: CPU seconds of a training step per pixel of its batch (per multiply-add, per sine unit, and fixed),
#: forward + backward + Adam, fitted to steps of widths 24..160 and 3..8 layers on a 768x512 image
#: with torch 2.13 on 2 cores of our CI machine; a whole-image evaluation costs about as much per pixel
#: (the sine units' element-wise work dominates at the widths rate control picks)
CPU_SECONDS_PER_MAC = 2.5e-11
CPU_SECONDS_PER_UNIT = 7.0e-9
CPU_SECONDS_PER_PIXEL = 3.5e-7
CPU_SECONDS_PER_STEP = 1.0e-3
MIN_WIDTH, MIN_LAYERS = 8, 2
EST_BITS_PER_WEIGHT = 6.5  #: entropy-coded 8-bit weight, measured on Kodak crops
EST_HEADER_BYTES_PER_TENSOR = 7


def architecture_for_budget(n_params: float, channels: int, *, max_layers: int = 8,
                            arch: int = bitstream.SIREN) -> tuple[int, int]:
    """(hidden_width, hidden_layers) of the network of family `arch` with about n_params parameters.

    Depth grows with the budget (deeper nets pay off only when wide enough): about 2 layers at
    1k parameters, 6 at 16k, capped at max_layers.
    """
    layers = int(min(max_layers, max(MIN_LAYERS, round(2 + math.log2(max(n_params, 1) / 1000)))))
    best = MIN_WIDTH
    for width in range(MIN_WIDTH, 1025):
        if parameter_count(arch, width, layers, channels) > n_params:
            break
        best = width
    return best, layers


def _rate_model(sparsity: float, layers_guess: int) -> tuple[float, float]:
    """(header bits, bits per stored weight) of the rate estimate."""
    header_bits = 8 * (30 + EST_HEADER_BYTES_PER_TENSOR * 2 * (layers_guess + 1))
    return header_bits, EST_BITS_PER_WEIGHT * (1 - sparsity) + 1.0 * sparsity


def params_for_rate(bpp: float, width: int, height: int, *, sparsity: float, layers_guess: int = 6) -> float:
    """Parameter budget for a target rate, from measured bits per stored weight."""
    header_bits, bits_per_param = _rate_model(sparsity, layers_guess)
    return max(0.0, (bpp * width * height - header_bits) / bits_per_param)


def rate_for_params(n_params: float, width: int, height: int, *, sparsity: float, layers_guess: int = 6) -> float:
    """Estimated bpp of a network with n_params parameters (inverse of params_for_rate)."""
    header_bits, bits_per_param = _rate_model(sparsity, layers_guess)
    return (header_bits + n_params * bits_per_param) / (width * height)


def cpu_step_seconds(*, arch: int, pixels: int, batch_pixels: int, hidden_width: int, hidden_layers: int,
                     channels: int, eval_every: int = 250) -> float:
    """Modelled CPU seconds of one fitting step, with its share of the whole-image evaluations.

    Fitted to SIRENs; other families are costed by their multiply-adds and hidden units alike.
    """
    macs = multiply_adds(arch, hidden_width, hidden_layers, channels)
    units = hidden_width * hidden_layers
    per_pixel = CPU_SECONDS_PER_MAC * macs + CPU_SECONDS_PER_UNIT * units + CPU_SECONDS_PER_PIXEL
    batch = min(batch_pixels, pixels)
    evaluation = 0.0 if batch >= pixels else pixels * per_pixel / eval_every  # forward only, but as costly per pixel
    return CPU_SECONDS_PER_STEP + batch * per_pixel + evaluation


def plan_mlp_steps(cfg: EncoderConfig, *, device_type: str, pixels: int, batch_pixels: int, hidden_width: int,
                   hidden_layers: int, channels: int) -> StepPlan:
    """The step plan (codec.encoding.common.plan_steps) of a network of this size under cfg."""
    per_step = cpu_step_seconds(arch=cfg.arch_id, pixels=pixels, batch_pixels=batch_pixels, hidden_width=hidden_width,
                                hidden_layers=hidden_layers, channels=channels)
    return plan_steps(cfg, device_type=device_type, seconds_per_step=per_step, min_steps=MIN_PLANNED_STEPS, pixels=pixels)


def choose_architecture(cfg: EncoderConfig, n_params: float, channels: int, *, device_type: str, pixels: int,
                        batch_pixels: int) -> tuple[int, int]:
    """(hidden_width, hidden_layers) for a rate's parameter budget `n_params`.

    The network is sized for `cfg.mlp.size_factor * n_params` parameters; on the CPU it shrinks further
    (by 2 % at a time) until the plan of the time budget (the given one, else the default 150 s,
    also when `steps` is given) gives it at least MIN_TRAINED_STEPS steps. So `--steps N` on the
    CPU fits the same networks as the default encode, only for N steps (sized by the rate alone, a
    short fit of the largest networks decoded worse than a smaller network at a lower rate).
    """
    factor = cfg.mlp.size_factor
    sizing = replace(cfg, steps=None) if device_type == "cpu" else cfg  # the budget's plan sizes the network
    while True:
        width, layers = architecture_for_budget(n_params * factor, channels, max_layers=cfg.mlp.max_layers,
                                                arch=cfg.arch_id)
        plan = plan_mlp_steps(sizing, device_type=device_type, pixels=pixels, batch_pixels=batch_pixels,
                              hidden_width=width, hidden_layers=layers, channels=channels)
        if plan.source != "budget" or plan.steps >= MIN_TRAINED_STEPS or factor < 0.02 or width <= MIN_WIDTH:
            return width, layers
        factor *= 0.98


def new_network(arch: int, dims: tuple, seed: int, device, *, meta: bool) -> tuple[torch.nn.Module, str]:
    """A fresh network of family `arch` for `dims`: seeded init, or the packaged meta-learned one when
    `meta` and one exists for this network (SIRENs only). Returns (model, "meta" or "random")."""
    width, height, channels, hidden_width, hidden_layers, omega0 = dims
    torch.manual_seed(seed)
    model = build_network(arch, channels=channels, hidden_width=hidden_width, hidden_layers=hidden_layers, omega0=omega0)
    tensors = find_init(channels, hidden_width, hidden_layers, omega0) if meta and arch == bitstream.SIREN else None
    if tensors is not None:
        load_weights(model, tensors)
    return model.to(device), "meta" if tensors is not None else "random"


def _fit_with_restarts(cfg: EncoderConfig, dims: tuple, coords, target, *, fit_steps: int, flat_mse: float,
                       deadline: float | None, device, run: dict):
    """Fit a fresh network of cfg's family; restart (FIT_ATTEMPTS) while a fit is no better than a flat image.

    The first attempt starts from the meta-learned init when cfg.init is "meta" (and one exists);
    restarts start from seeded random inits. Returns (model, generator, last PhaseResult, attempts,
    steps run over all attempts, init of the kept fit).
    """
    progress = run["progress"]
    steps_done = 0
    for attempt, (lr_factor, seed_offset) in enumerate(FIT_ATTEMPTS, start=1):
        seed = cfg.seed + seed_offset
        model, init = new_network(cfg.arch_id, dims, seed, device, meta=cfg.init == "meta" and attempt == 1)
        generator = torch.Generator(device=device).manual_seed(seed)
        warmup = warmup_steps(fit_steps, cfg.mlp.warmup_fraction)
        check_step = max(round(fit_steps * CHECK_FRACTION), 2 * warmup)
        checked = flat_mse > FLAT_IMAGE_MSE and fit_steps >= MIN_CHECKED_STEPS and check_step <= fit_steps // 2
        phase = Phase("fit", fit_steps, cfg.fit_lr * lr_factor, lr_scales=lr_scales(model, cfg.mlp.lr_scaling),
                      warmup_steps=warmup, deadline=deadline, check_step=check_step if checked else None,
                      check_mse=flat_mse * FLAT_BAR if checked else None)
        fitted = optimise(model, coords, target, phase, generator=generator, **run)
        steps_done += fitted.steps
        if fitted.failure is None:
            break
        if attempt < len(FIT_ATTEMPTS):
            next_lr, next_seed = cfg.fit_lr * FIT_ATTEMPTS[attempt][0], cfg.seed + FIT_ATTEMPTS[attempt][1]
            progress.message(f"fit did not learn: {fitted.failure}; restarting with learning rate {next_lr:.3g}, seed {next_seed}")
        else:
            progress.message(f"fit did not learn: {fitted.failure}; giving up on fitting")
    return model, generator, fitted, attempt, steps_done, init


@dataclass(frozen=True)
class EncodePlan:
    """What an encode of one image will do, fixed before any fitting: network, batch, steps per phase."""

    arch: int  # the network family's id
    dims: tuple  # (width, height, channels, hidden_width, hidden_layers, omega0)
    batch_pixels: int
    phase_steps: dict  # "fit", "prune", "qat" -> steps
    shares: dict  # "prune", "qat" -> share of the steps
    time_cap: float | None
    budget_bytes: int | None

    @property
    def size(self) -> tuple[int, int]:
        """The image's (width, height)."""
        return self.dims[0], self.dims[1]


def plan_encode(shape: tuple, cfg: EncoderConfig, device) -> EncodePlan:
    """Architecture, batch and step plan of an encode of an image of `shape` (H, W, C); cfg validated."""
    height, width, channels = shape
    target_bpp = cfg.target_bpp
    budget_bytes = cfg.budget_bytes(width, height)
    batch = cfg.batch_pixels or (height * width if device.type == "cuda" else CPU_BATCH_PIXELS)
    if cfg.mlp.fixed_size:
        hidden_width, hidden_layers = cfg.mlp.hidden_width, cfg.mlp.hidden_layers
    else:
        n_params = params_for_rate(target_bpp or 0.3, width, height, sparsity=cfg.sparsity)
        hidden_width, hidden_layers = choose_architecture(cfg, n_params, channels, device_type=device.type,
                                                          pixels=height * width, batch_pixels=batch)
        smallest = parameter_count(cfg.arch_id, MIN_WIDTH, MIN_LAYERS, channels)
        if n_params < smallest and cfg.bpp is not None:
            need = rate_for_params(smallest, width, height, sparsity=cfg.sparsity)
            raise OptionError(f"bpp target {cfg.bpp:g} is too low for a {width}x{height} image: "
                              f"the smallest network needs about {need:.3g} bpp")
    omega0 = float(np.float32(cfg.mlp.omega0)) if architectures.ARCHITECTURES[cfg.arch_id].uses_omega0 else 1.0
    plan = plan_mlp_steps(cfg, device_type=device.type, pixels=height * width, batch_pixels=batch,
                          hidden_width=hidden_width, hidden_layers=hidden_layers, channels=channels)
    shares = {"qat": cfg.mlp.qat_fraction, "prune": 0.05 if cfg.sparsity > 0 else 0.0}
    phase_steps = {name: int(plan.steps * share) for name, share in shares.items()}
    phase_steps["fit"] = max(1, plan.steps - sum(phase_steps.values()))
    return EncodePlan(arch=cfg.arch_id, dims=(width, height, channels, hidden_width, hidden_layers, omega0), batch_pixels=batch,
                      phase_steps=phase_steps, shares=shares, time_cap=plan.time_cap, budget_bytes=budget_bytes)


def _search_level(model: torch.nn.Module, plan: "EncodePlan", steps_fn, coarse: float, fine: float, kinds=None):
    """(level, file, fits) of the finest quantization level in [coarse, fine] whose file meets the plan's
    budget (codec.encoding.common.finest_within); `steps_fn(params, level)` gives per-tensor steps."""
    params = model.parameters_in_file_order()
    return finest_within(plan.budget_bytes, lambda level: serialize(model, steps_fn(params, level), plan.size, kinds=kinds),
                         fine, coarse, tolerance=LEVEL_TOLERANCE)


def _flat_file(pixels: np.ndarray, plan: "EncodePlan", kinds=None) -> bytes:
    """The flat fallback in a network of the plan's family and size (codec.encoding.common.flat_file)."""
    _, _, channels, hidden_width, hidden_layers, omega0 = plan.dims
    model = build_network(plan.arch, channels=channels, hidden_width=hidden_width, hidden_layers=hidden_layers,
                          omega0=omega0)
    steps = [1.0] * (len(model.parameters_in_file_order()) - 1) + [FLAT_BIAS_STEP]
    return flat_file(model, pixels, steps, kinds=kinds)


@dataclass(frozen=True)
class RateControl:
    """The quantization an encode settled on before fine-tuning."""

    steps_fn: object  # (params, level) -> per-tensor steps
    level: float
    levels: tuple[float, float]
    controlled: bool  # the level was searched to meet budget_bytes


def choose_quantization(model: torch.nn.Module, plan: EncodePlan, cfg: EncoderConfig, progress: Progress) -> RateControl:
    """The finest quantization whose file meets the rate target (or the fixed --bits)."""
    width, height = plan.size
    bits = cfg.mlp.bits
    controlled = plan.budget_bytes is not None and bits is None
    if not controlled:
        return RateControl(steps_for_bits, bits if bits is not None else DEFAULT_BITS, BITS_RANGE, False)
    if cfg.mlp.quant_scheme == "shared":
        steps_fn, level, levels = steps_for_level, DEFAULT_LEVEL, LEVEL_RANGE
    else:
        steps_fn, level, levels = steps_for_bits, DEFAULT_BITS, BITS_RANGE
    searched, data, fits = _search_level(model, plan, steps_fn, *levels, cfg.entropy_models)
    if fits:
        level = searched
    elif cfg.bpp is not None:
        smallest = len(data)
        raise OptionError(f"bpp target {cfg.bpp:g} is too low for this image: the smallest file is {smallest} "
                          f"bytes ({8 * smallest / (width * height):.3f} bpp)")
    else:
        progress.message(f"preset {cfg.preset}: {cfg.target_bpp} bpp is below the smallest file for a "
                         f"{width}x{height} image; using the default quantization")
    return RateControl(steps_fn, level, levels, True)


def finish_file(model: torch.nn.Module, plan: EncodePlan, cfg: EncoderConfig, rate: RateControl, pixels: np.ndarray, *,
                flat_mse: float, fit_failed: bool, device, progress: Progress) -> tuple[bytes, float, bool, list[float]]:
    """Serialize the fine-tuned model, meet the rate, decode and check against the flat image.

    Returns (file, PSNR of its decoding, whether the flat fallback was stored, per-tensor steps).
    """
    params = model.parameters_in_file_order()
    qsteps = rate.steps_fn(params, rate.level)
    data = serialize(model, qsteps, plan.size, kinds=cfg.entropy_models)
    if rate.controlled and len(data) > plan.budget_bytes:  # fine-tuning moved weights: coarsen a little
        level, refitted, fits = _search_level(model, plan, rate.steps_fn, rate.levels[0], rate.level, cfg.entropy_models)
        if fits:
            data = refitted
            qsteps = rate.steps_fn(params, level)
    data, quality, fallback = keep_or_flat(data, pixels, flat_mse=flat_mse, fit_failed=fit_failed, device=device,
                                           progress=progress, flat=lambda: _flat_file(pixels, plan, cfg.entropy_models))
    return data, quality, fallback, qsteps


def encode(pixels: np.ndarray, cfg: EncoderConfig) -> EncodeResult:
    """Encode an (H, W, C) uint8 array, C in {1, 3}, with a coordinate MLP (cfg validated, its family
    resolved: codec.encoding.encode_pixels)."""
    t0 = time.monotonic()
    height, width, channels = pixels.shape
    device = resolve_device(cfg.device)
    progress = Progress(enabled=cfg.progress)
    plan = plan_encode(pixels.shape, cfg, device)
    phase_steps, shares = plan.phase_steps, plan.shares
    deadline = None if plan.time_cap is None else t0 + plan.time_cap

    def phase_deadline(name: str) -> float | None:  # the cap is shared out in phase order: fit, prune, qat
        if deadline is None:
            return None
        done = {"fit": 1.0 - shares["qat"] - shares["prune"], "prune": 1.0 - shares["qat"], "qat": 1.0}[name]
        return t0 + plan.time_cap * done

    coords, target, flat_mse = image_tensors(pixels, device)
    run = dict(batch_pixels=plan.batch_pixels, progress=progress)
    model, generator, fitted, attempts, steps_done, init = _fit_with_restarts(
        cfg, plan.dims, coords, target, fit_steps=phase_steps["fit"], flat_mse=flat_mse, deadline=phase_deadline("fit"),
        device=device, run=run)
    stopped_early = fitted.stopped_early
    masks = None
    if cfg.sparsity > 0:
        masks = magnitude_masks(model, cfg.sparsity)
        apply_masks(model, masks)
    if masks is not None and phase_steps["prune"]:
        pruned = optimise(model, coords, target, Phase("prune", phase_steps["prune"], cfg.mlp.qat_lr * 3, deadline=phase_deadline("prune")),
                          generator=generator, masks=masks, **run)
        steps_done += pruned.steps
        stopped_early |= pruned.stopped_early

    rate = choose_quantization(model, plan, cfg, progress)
    qsteps = rate.steps_fn(model.parameters_in_file_order(), rate.level)

    def transform(params: list[torch.Tensor]) -> list[torch.Tensor]:
        return [fake_quantize(p, s) for p, s in zip(params, qsteps)]

    if phase_steps["qat"] and fitted.failure is None:
        tuned = optimise(model, coords, target, Phase("qat", phase_steps["qat"], cfg.mlp.qat_lr, deadline=phase_deadline("qat")),
                         generator=generator, transform=transform, masks=masks, **run)
        steps_done += tuned.steps
        stopped_early |= tuned.stopped_early

    data, quality, fallback, qsteps = finish_file(model, plan, cfg, rate, pixels, flat_mse=flat_mse,
                                                  fit_failed=fitted.failure is not None, device=device, progress=progress)
    return EncodeResult(
        data=data, width=width, height=height, channels=channels, bytes=len(data),
        bpp=8 * len(data) / (width * height), psnr=quality, steps=steps_done,
        seconds=time.monotonic() - t0, device=str(device), seed=cfg.seed,
        hidden_width=plan.dims[3], hidden_layers=plan.dims[4], quant_step=qsteps[0],
        sparsity=cfg.sparsity, target_bpp=cfg.target_bpp, fit_attempts=attempts, time_capped=stopped_early,
        flat_fallback=fallback, init=init, arch=cfg.arch,
    )
