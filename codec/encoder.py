"""image -> `.inr` bytes: fit, prune, quantize with fine-tuning, rate control, entropy coding."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

import bitstream
from bitstream import Header, TensorRecord, architectures, choose_model, parameter_count

from .config import (
    MIN_LAYERS, MIN_WIDTH, EncoderConfig, choose_architecture, params_for_rate, plan_steps, rate_for_params,
    warmup_steps,
)
from .coords import grid
from .decoder import decode_array
from .devices import resolve_device
from .errors import OptionError
from .fitting import Phase, mse_to_psnr, optimise
from .meta_init import find_init
from .metrics import psnr
from .progress import Progress
from .pruning import apply_masks, magnitude_masks
from .quantization import fake_quantize, quantize, steps_for_bits, steps_for_level
from .families import build_network, load_weights, lr_scales

DEFAULT_BITS = 8.0  #: bit width without a rate target
LEVEL_RANGE = (2.0, 16.0)  #: rate control searches base steps 2**-16 .. 2**-2
DEFAULT_LEVEL = 10.0  #: base step 2**-10 when a preset's target cannot be met
BITS_RANGE = (2.0, 12.0)  #: the "range" scheme (ablation) searches bit widths
CPU_BATCH_PIXELS = 1 << 14  #: pixels per step on the CPU (the whole image per step on a GPU)
#: (learning-rate factor, seed offset) of each fitting attempt: a fit that does not learn is restarted
FIT_ATTEMPTS = ((1.0, 0), (0.25, 1), (0.0625, 2))
CHECK_FRACTION = 0.2  #: the fit is checked after this share of its steps (and twice the warm-up) ...
FLAT_BAR = 0.8  #: ... and must have at most this share of a flat image's MSE by then (1 dB better)
MIN_CHECKED_STEPS = 200  #: shorter fits are not checked (too few steps to judge)
FLAT_IMAGE_MSE = 1e-6  #: images flatter than this skip the check (a flat image cannot be beaten)
FALLBACK_MARGIN_DB = 1.0  #: a decoded PSNR this close to a flat image's is checked against the real flat file
FLAT_BIAS_STEP = 2.0**-9  #: quantization step of the mean colour in the flat fallback file


@dataclass(frozen=True)
class EncodeResult:
    """The file and what was measured while making it (PSNR is of the decoded file)."""

    data: bytes
    width: int
    height: int
    channels: int
    bytes: int
    bpp: float
    psnr: float
    steps: int
    seconds: float
    device: str
    seed: int
    hidden_width: int
    hidden_layers: int
    quant_step: float  # step of the first weight tensor (see codec.quantization)
    sparsity: float
    target_bpp: float | None
    fit_attempts: int  # 1, or more when a fit that did not learn was restarted
    time_capped: bool  # the time cap cut the planned steps short (the bytes then depend on machine speed)
    flat_fallback: bool  # every fit failed, or decoded worse than a flat image: the file holds the flat image
    init: str = "random"  # what the kept fit started from: "random" (seeded) or "meta" (a packaged init)
    arch: str = "siren"  # the network family (bitstream.architectures)

    def summary(self) -> dict:
        """JSON-ready summary (without the data)."""
        out = asdict(self)
        del out["data"]
        return out


def _header(arch, width, height, channels, hidden_width, hidden_layers, omega0, records) -> Header:
    return Header(width=width, height=height, channels=channels, arch=arch, hidden_width=hidden_width,
                  hidden_layers=hidden_layers, omega0=omega0, init_id=0, tensors=tuple(records))


def _serialize(model: torch.nn.Module, steps: list[float], dims: tuple, kinds=None) -> bytes:
    """The `.inr` file of `model` (any family: its `arch_id`) quantized with per-tensor `steps`."""
    symbols = [quantize(p, s) for p, s in zip(model.parameters_in_file_order(), steps)]
    records = [TensorRecord(step, choose_model(sym, kinds=kinds)) for step, sym in zip(steps, symbols)]
    return bitstream.write_file(_header(model.arch_id, *dims, records), symbols)


def _search_level(model: torch.nn.Module, dims: tuple, budget_bytes: int, steps_fn, lo: float, hi: float, kinds=None):
    """(level, file) of the finest quantization level in [lo, hi] whose file fits budget_bytes, or None.

    `steps_fn(params, level)` gives per-tensor steps; file size grows with the level (bisection).
    """
    params = model.parameters_in_file_order()
    data = _serialize(model, steps_fn(params, hi), dims, kinds)
    if len(data) <= budget_bytes:
        return hi, data
    data = _serialize(model, steps_fn(params, lo), dims, kinds)
    if len(data) > budget_bytes:
        return None
    best = (lo, data)
    while hi - lo > 0.01:
        mid = 0.5 * (lo + hi)
        data = _serialize(model, steps_fn(params, mid), dims, kinds)
        if len(data) <= budget_bytes:
            lo, best = mid, (mid, data)
        else:
            hi = mid
    return best


def _flat_file(pixels: np.ndarray, arch: int, dims: tuple, kinds=None) -> bytes:
    """The trivial fallback: a network whose weights are all zero and whose output bias is the mean colour."""
    width, height, channels, hidden_width, hidden_layers, omega0 = dims
    model = build_network(arch, channels=channels, hidden_width=hidden_width, hidden_layers=hidden_layers, omega0=omega0)
    params = model.parameters_in_file_order()
    with torch.no_grad():
        for p in params:
            p.zero_()
        mean = pixels.reshape(-1, channels).astype(np.float64).mean(axis=0) / 127.5 - 1.0
        params[-1].copy_(torch.from_numpy(mean.astype(np.float32)))  # the output layer's bias
    steps = [1.0] * (len(params) - 1) + [FLAT_BIAS_STEP]
    return _serialize(model, steps, dims, kinds)


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
        warmup = warmup_steps(fit_steps, cfg.warmup_fraction)
        check_step = max(round(fit_steps * CHECK_FRACTION), 2 * warmup)
        checked = flat_mse > FLAT_IMAGE_MSE and fit_steps >= MIN_CHECKED_STEPS and check_step <= fit_steps // 2
        phase = Phase("fit", fit_steps, cfg.fit_lr * lr_factor, lr_scales=lr_scales(model, cfg.lr_scaling),
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


def plan_encode(shape: tuple, cfg: EncoderConfig, device) -> EncodePlan:
    """Architecture, batch and step plan of an encode of an image of `shape` (H, W, C); cfg validated."""
    height, width, channels = shape
    target_bpp = cfg.target_bpp
    budget_bytes = int(target_bpp * width * height // 8) if target_bpp is not None else None
    batch = cfg.batch_pixels or (height * width if device.type == "cuda" else CPU_BATCH_PIXELS)
    if cfg.hidden_width is not None:
        hidden_width, hidden_layers = cfg.hidden_width, cfg.hidden_layers
    else:
        n_params = params_for_rate(target_bpp or 0.3, width, height, sparsity=cfg.sparsity)
        hidden_width, hidden_layers = choose_architecture(cfg, n_params, channels, device_type=device.type,
                                                          pixels=height * width, batch_pixels=batch)
        smallest = parameter_count(cfg.arch_id, MIN_WIDTH, MIN_LAYERS, channels)
        if n_params < smallest and cfg.bpp is not None:
            need = rate_for_params(smallest, width, height, sparsity=cfg.sparsity)
            raise OptionError(f"bpp target {cfg.bpp:g} is too low for a {width}x{height} image: "
                              f"the smallest network needs about {need:.3g} bpp")
    omega0 = float(np.float32(cfg.omega0)) if architectures.ARCHITECTURES[cfg.arch_id].uses_omega0 else 1.0
    plan = plan_steps(cfg, device_type=device.type, pixels=height * width, batch_pixels=batch,
                      hidden_width=hidden_width, hidden_layers=hidden_layers, channels=channels)
    shares = {"qat": cfg.qat_fraction, "prune": 0.05 if cfg.sparsity > 0 else 0.0}
    phase_steps = {name: int(plan.steps * share) for name, share in shares.items()}
    phase_steps["fit"] = max(1, plan.steps - sum(phase_steps.values()))
    return EncodePlan(arch=cfg.arch_id, dims=(width, height, channels, hidden_width, hidden_layers, omega0), batch_pixels=batch,
                      phase_steps=phase_steps, shares=shares, time_cap=plan.time_cap, budget_bytes=budget_bytes)


def image_tensors(pixels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(coordinates (N, 2), target values (N, C) in [-1, 1], MSE of the flat image) of an (H, W, C) array."""
    height, width, channels = pixels.shape
    coords = grid(height, width, device=device)
    target = torch.from_numpy(np.array(pixels.reshape(-1, channels))).to(device=device, dtype=torch.float32) / 127.5 - 1.0
    return coords, target, float(target.var(dim=0, unbiased=False).mean())


@dataclass(frozen=True)
class RateControl:
    """The quantization an encode settled on before fine-tuning."""

    steps_fn: object  # (params, level) -> per-tensor steps
    level: float
    levels: tuple[float, float]
    controlled: bool  # the level was searched to meet budget_bytes


def choose_quantization(model: torch.nn.Module, plan: EncodePlan, cfg: EncoderConfig, progress: Progress) -> RateControl:
    """The finest quantization whose file meets the rate target (or the fixed --bits)."""
    width, height = plan.dims[0], plan.dims[1]
    params = model.parameters_in_file_order()
    controlled = plan.budget_bytes is not None and cfg.bits is None
    if not controlled:
        return RateControl(steps_for_bits, cfg.bits if cfg.bits is not None else DEFAULT_BITS, BITS_RANGE, False)
    if cfg.quant_scheme == "shared":
        steps_fn, level, levels = steps_for_level, DEFAULT_LEVEL, LEVEL_RANGE
    else:
        steps_fn, level, levels = steps_for_bits, DEFAULT_BITS, BITS_RANGE
    searched = _search_level(model, plan.dims, plan.budget_bytes, steps_fn, *levels, cfg.entropy_models)
    if searched is not None:
        level = searched[0]
    elif cfg.bpp is not None:
        smallest = len(_serialize(model, steps_fn(params, levels[0]), plan.dims, cfg.entropy_models))
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
    data = _serialize(model, qsteps, plan.dims, cfg.entropy_models)
    if rate.controlled and len(data) > plan.budget_bytes:  # fine-tuning moved weights: coarsen a little
        refitted = _search_level(model, plan.dims, plan.budget_bytes, rate.steps_fn, rate.levels[0], rate.level,
                                 cfg.entropy_models)
        if refitted is not None:
            level, data = refitted
            qsteps = rate.steps_fn(params, level)
    quality = psnr(decode_array(data, device=str(device)), pixels)
    fallback = False
    if fit_failed or quality < mse_to_psnr(flat_mse) + FALLBACK_MARGIN_DB:
        flat_data = _flat_file(pixels, plan.arch, plan.dims, cfg.entropy_models)
        flat_quality = psnr(decode_array(flat_data, device=str(device)), pixels)
        if flat_quality > quality:
            progress.message(f"the fitted network decodes to {quality:.2f} dB, below a flat image's {flat_quality:.2f} dB; "
                             "storing the flat image instead")
            data, quality, fallback = flat_data, flat_quality, True
    return data, quality, fallback, qsteps


def encode_pixels(pixels: np.ndarray, config: EncoderConfig) -> EncodeResult:
    """Encode an (H, W, C) uint8 array, C in {1, 3}. See :func:`codec.encode` for the options."""
    cfg = config.validated().for_image(pixels.shape[1], pixels.shape[0], pixels.shape[2])
    if architectures.ARCHITECTURES[cfg.arch_id].has_grid:
        from .latent_encoder import encode_latent  # imports this module

        return encode_latent(pixels, cfg)
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
        pruned = optimise(model, coords, target, Phase("prune", phase_steps["prune"], cfg.qat_lr * 3, deadline=phase_deadline("prune")),
                          generator=generator, masks=masks, **run)
        steps_done += pruned.steps
        stopped_early |= pruned.stopped_early

    rate = choose_quantization(model, plan, cfg, progress)
    qsteps = rate.steps_fn(model.parameters_in_file_order(), rate.level)

    def transform(params: list[torch.Tensor]) -> list[torch.Tensor]:
        return [fake_quantize(p, s) for p, s in zip(params, qsteps)]

    if phase_steps["qat"] and fitted.failure is None:
        tuned = optimise(model, coords, target, Phase("qat", phase_steps["qat"], cfg.qat_lr, deadline=phase_deadline("qat")),
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
