"""image -> `.inr` bytes: fit, prune, quantize with fine-tuning, rate control, entropy coding."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

import bitstream
from bitstream import Header, TensorRecord, choose_model, parameter_count

from .config import (
    DEFAULT_CPU_TIME_BUDGET, DEFAULT_STEPS, MIN_LAYERS, MIN_WIDTH, EncoderConfig, architecture_for_budget,
    params_for_rate, rate_for_params,
)
from .coords import grid
from .decoder import decode_array
from .devices import resolve_device
from .errors import OptionError
from .fitting import Phase, optimise
from .metrics import psnr
from .progress import Progress
from .pruning import apply_masks, magnitude_masks
from .quantization import fake_quantize, quantize, steps_for_bits, steps_for_level
from .siren import Siren

ARCH = bitstream.SIREN
DEFAULT_BITS = 8.0  #: bit width without a rate target
LEVEL_RANGE = (2.0, 16.0)  #: rate control searches base steps 2**-16 .. 2**-2
DEFAULT_LEVEL = 10.0  #: base step 2**-10 when a preset's target cannot be met
BITS_RANGE = (2.0, 12.0)  #: the "range" scheme (ablation) searches bit widths
CPU_BATCH_PIXELS = 1 << 14  #: pixels per step on the CPU (the whole image per step on a GPU)


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

    def summary(self) -> dict:
        """JSON-ready summary (without the data)."""
        out = asdict(self)
        del out["data"]
        return out


def _header(width, height, channels, hidden_width, hidden_layers, omega0, records) -> Header:
    return Header(width=width, height=height, channels=channels, arch=ARCH, hidden_width=hidden_width,
                  hidden_layers=hidden_layers, omega0=omega0, init_id=0, tensors=tuple(records))


def _serialize(model: Siren, steps: list[float], dims: tuple, kinds=None) -> bytes:
    symbols = [quantize(p, s) for p, s in zip(model.parameters_in_file_order(), steps)]
    records = [TensorRecord(step, choose_model(sym, kinds=kinds)) for step, sym in zip(steps, symbols)]
    return bitstream.write_file(_header(*dims, records), symbols)


def _search_level(model: Siren, dims: tuple, budget_bytes: int, steps_fn, lo: float, hi: float, kinds=None):
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


def encode_pixels(pixels: np.ndarray, config: EncoderConfig) -> EncodeResult:
    """Encode an (H, W, C) uint8 array, C in {1, 3}. See :func:`codec.encode` for the options."""
    cfg = config.validated()
    t0 = time.monotonic()
    height, width, channels = pixels.shape
    device = resolve_device(cfg.device)
    progress = Progress(enabled=cfg.progress)
    target_bpp = cfg.target_bpp
    budget_bytes = int(target_bpp * width * height // 8) if target_bpp is not None else None

    if cfg.hidden_width is not None:
        hidden_width, hidden_layers = cfg.hidden_width, cfg.hidden_layers
    else:
        n_params = params_for_rate(target_bpp or 0.3, width, height, sparsity=cfg.sparsity)
        hidden_width, hidden_layers = architecture_for_budget(n_params, channels)
        smallest = parameter_count(MIN_WIDTH, MIN_LAYERS, channels)
        if n_params < smallest and cfg.bpp is not None:
            need = rate_for_params(smallest, width, height, sparsity=cfg.sparsity)
            raise OptionError(f"bpp target {cfg.bpp:g} is too low for a {width}x{height} image: "
                              f"the smallest network needs about {need:.3g} bpp")
    omega0 = float(np.float32(cfg.omega0))
    dims = (width, height, channels, hidden_width, hidden_layers, omega0)

    torch.manual_seed(cfg.seed)
    model = Siren(channels=channels, hidden_width=hidden_width, hidden_layers=hidden_layers, omega0=omega0).to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    coords = grid(height, width, device=device)
    target = torch.from_numpy(np.array(pixels.reshape(-1, channels))).to(device=device, dtype=torch.float32) / 127.5 - 1.0
    batch = cfg.batch_pixels or (height * width if device.type == "cuda" else CPU_BATCH_PIXELS)

    total_steps = cfg.steps or DEFAULT_STEPS
    seconds = cfg.time_budget
    if seconds is None and cfg.steps is None and device.type == "cpu":
        seconds = DEFAULT_CPU_TIME_BUDGET  # a plain CPU encode ends in minutes; explicit steps are honoured
    shares = {"qat": cfg.qat_fraction, "prune": 0.05 if cfg.sparsity > 0 else 0.0}
    phase_steps = {name: int(total_steps * share) for name, share in shares.items()}
    phase_steps["fit"] = max(1, total_steps - sum(phase_steps.values()))
    shares["fit"] = 1.0 - sum(shares.values())

    def phase(name: str, lr: float) -> Phase:
        return Phase(name, phase_steps[name], None if seconds is None else seconds * shares[name], lr)

    run = dict(batch_pixels=batch, generator=generator, progress=progress)
    steps_done = optimise(model, coords, target, phase("fit", cfg.lr), **run).steps
    masks = None
    if cfg.sparsity > 0:
        masks = magnitude_masks(model, cfg.sparsity)
        apply_masks(model, masks)
    if masks is not None and phase_steps["prune"]:
        steps_done += optimise(model, coords, target, phase("prune", cfg.qat_lr * 3), masks=masks, **run).steps

    params = model.parameters_in_file_order()
    rate_controlled = budget_bytes is not None and cfg.bits is None
    if rate_controlled:
        if cfg.quant_scheme == "shared":
            steps_fn, level, levels = steps_for_level, DEFAULT_LEVEL, LEVEL_RANGE
        else:
            steps_fn, level, levels = steps_for_bits, DEFAULT_BITS, BITS_RANGE
        fitted = _search_level(model, dims, budget_bytes, steps_fn, *levels, cfg.entropy_models)
        if fitted is not None:
            level = fitted[0]
        elif cfg.bpp is not None:
            smallest = len(_serialize(model, steps_fn(params, levels[0]), dims, cfg.entropy_models))
            raise OptionError(f"bpp target {cfg.bpp:g} is too low for this image: the smallest file is {smallest} "
                              f"bytes ({8 * smallest / (width * height):.3f} bpp)")
        else:
            progress.message(f"preset {cfg.preset}: {target_bpp} bpp is below the smallest file for a "
                             f"{width}x{height} image; using the default quantization")
    else:
        steps_fn, level = steps_for_bits, (cfg.bits if cfg.bits is not None else DEFAULT_BITS)
    qsteps = steps_fn(params, level)

    def transform(params: list[torch.Tensor]) -> list[torch.Tensor]:
        return [fake_quantize(p, s) for p, s in zip(params, qsteps)]

    if phase_steps["qat"]:
        steps_done += optimise(model, coords, target, phase("qat", cfg.qat_lr), transform=transform, masks=masks, **run).steps

    data = _serialize(model, qsteps, dims, cfg.entropy_models)
    if rate_controlled and len(data) > budget_bytes:  # fine-tuning moved weights: coarsen a little
        refitted = _search_level(model, dims, budget_bytes, steps_fn, levels[0], level, cfg.entropy_models)
        if refitted is not None:
            level, data = refitted
            qsteps = steps_fn(params, level)
    decoded = decode_array(data, device=str(device))
    quality = psnr(decoded, pixels)
    return EncodeResult(
        data=data, width=width, height=height, channels=channels, bytes=len(data),
        bpp=8 * len(data) / (width * height), psnr=quality, steps=steps_done,
        seconds=time.monotonic() - t0, device=str(device), seed=cfg.seed,
        hidden_width=hidden_width, hidden_layers=hidden_layers, quant_step=qsteps[0],
        sparsity=cfg.sparsity, target_bpp=target_bpp,
    )
