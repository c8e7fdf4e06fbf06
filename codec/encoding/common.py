"""What every family's encoder shares: the result record, the image as tensors, the one serializer,
the one search for the finest quantization that meets the budget, the flat-image fallback, and the
step planner that turns a time budget into a fixed step count."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

import bitstream
from bitstream import Header, TensorRecord, choose_model

from ..config import DEFAULT_EFFORT, DEFAULT_STEPS, EncoderConfig
from ..coords import grid
from ..decoding import decode_array
from ..metrics import psnr
from ..progress import Progress
from .fitting import mse_to_psnr
from .quantization import quantize

#: planning steps from a time budget: the steps are chosen up front from a fixed cost model, so the bytes
#: do not depend on how busy the machine is; the budget itself is only a cap
PLAN_SHARE = 0.8  #: share of the budget the planned steps are expected to take (the rest: rate search, decode)
MAX_PLANNED_STEPS = 20_000
FALLBACK_MARGIN_DB = 1.0  #: a decoded PSNR this close to a flat image's is checked against the real flat file
FLAT_BIAS_STEP = 2.0**-9  #: the mean colour of the flat fallback file is a multiple of this


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
    quant_step: float  # step of the first stored tensor (see codec.encoding.quantization)
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


def image_tensors(pixels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(coordinates (N, 2), target values (N, C) in [-1, 1], MSE of the flat image) of an (H, W, C) array."""
    height, width, channels = pixels.shape
    coords = grid(height, width, device=device)
    target = torch.from_numpy(np.array(pixels.reshape(-1, channels))).to(device=device, dtype=torch.float32) / 127.5 - 1.0
    return coords, target, float(target.var(dim=0, unbiased=False).mean())


def serialize(model: torch.nn.Module, steps: list[float], size: tuple[int, int], *, kinds=None) -> bytes:
    """The `.inr` file of `model` (any family: its `arch_id` and `header_fields()`) for a (width, height)
    image, its tensors quantized with per-tensor `steps` and each coded with the smallest model of `kinds`."""
    symbols = [quantize(p, s) for p, s in zip(model.parameters_in_file_order(), steps)]
    records = tuple(TensorRecord(step, choose_model(sym, kinds=kinds)) for step, sym in zip(steps, symbols))
    header = Header(width=size[0], height=size[1], arch=model.arch_id, init_id=0, tensors=records, **model.header_fields())
    return bitstream.write_file(header, symbols)


def finest_within(budget_bytes: int, file_at: Callable[[float], bytes], fine: float, coarse: float, *,
                  tolerance: float = 0.0, max_iterations: int | None = None,
                  midpoint: Callable[[float, float], float] = lambda a, b: 0.5 * (a + b)) -> tuple[float, bytes, bool]:
    """(setting, file, fits) of the finest quantization setting between `fine` and `coarse` whose file
    `file_at(setting)` takes at most `budget_bytes`, by bisection (the file shrinks from fine to coarse):
    `fine` itself when it fits; else the coarsest's file with fits False when even that one does not fit;
    else the last fitting midpoint once the interval is at most `tolerance` wide, after `max_iterations`
    midpoints, or when the midpoint is an end."""
    data = file_at(fine)
    if len(data) <= budget_bytes:
        return fine, data, True
    data = file_at(coarse)
    if len(data) > budget_bytes:
        return coarse, data, False
    best = (coarse, data)
    done = 0
    while abs(coarse - fine) > tolerance and (max_iterations is None or done < max_iterations):
        mid = midpoint(fine, coarse)
        if mid in (fine, coarse):
            break
        done += 1
        data = file_at(mid)
        if len(data) <= budget_bytes:
            coarse, best = mid, (mid, data)
        else:
            fine = mid
    return best[0], best[1], True


def flat_file(model: torch.nn.Module, pixels: np.ndarray, steps: list[float], *, kinds=None) -> bytes:
    """The trivial fallback: `model` with every stored value zero but its output bias (the last tensor in
    file order), which holds the image's mean colour, quantized at `steps`."""
    params = model.parameters_in_file_order()
    channels = pixels.shape[2]
    mean = pixels.reshape(-1, channels).astype(np.float64).mean(axis=0) / 127.5 - 1.0
    with torch.no_grad():
        for p in params:
            p.zero_()
        params[-1].copy_(torch.from_numpy(np.round(mean / FLAT_BIAS_STEP) * FLAT_BIAS_STEP).float())
    return serialize(model, steps, (pixels.shape[1], pixels.shape[0]), kinds=kinds)


def keep_or_flat(data: bytes, pixels: np.ndarray, *, flat_mse: float, fit_failed: bool, flat: Callable[[], bytes],
                 device, progress: Progress) -> tuple[bytes, float, bool]:
    """(file, PSNR of its decoding, whether it is the flat fallback): the fitted file, unless the fit failed
    or it decodes within FALLBACK_MARGIN_DB of a flat image and the real flat file `flat()` decodes better."""
    quality = psnr(decode_array(data, device=str(device)), pixels)
    if fit_failed or quality < mse_to_psnr(flat_mse) + FALLBACK_MARGIN_DB:
        flat_data = flat()
        flat_quality = psnr(decode_array(flat_data, device=str(device)), pixels)
        if flat_quality > quality:
            progress.message(f"the fitted network decodes to {quality:.2f} dB, below a flat image's {flat_quality:.2f} dB; "
                             "storing the flat image instead")
            return flat_data, flat_quality, True
    return data, quality, False


@dataclass(frozen=True)
class StepPlan:
    """How long an encode optimises: `steps` in all (fixed up front) and an optional wall-clock cap."""

    steps: int
    time_cap: float | None  #: seconds; reaching it stops early (the bytes then depend on the machine's speed)
    source: str  #: "steps" (given), "budget" (planned from a time budget) or "effort" (a GPU's steps at the effort level)


def plan_steps(cfg: EncoderConfig, *, device_type: str, seconds_per_step: float, min_steps: int, pixels: int,
               fixed_seconds: float = 0.0) -> StepPlan:
    """The step count and time cap of an encode of a `pixels`-pixel image whose CPU steps cost
    `seconds_per_step` and whose work besides the steps (rate checks, rounding, the file) costs
    `fixed_seconds` (the family's fixed cost model).

    Given steps are used as they are (capped by a given time budget). Otherwise a time budget (the
    given one, or on the CPU the effort level's, EncoderConfig.effort_seconds) is turned into a step
    count by the cost model, so the same command gives the same bytes on any machine that finishes
    within the cap (between `min_steps` and MAX_PLANNED_STEPS). On a GPU: DEFAULT_STEPS at the default
    effort, doubled per level above it and halved per level below (at least `min_steps`), or more where
    a given budget allows more by the CPU model (a generous upper bound: there is no calibrated GPU model).
    """
    if cfg.steps is not None:
        return StepPlan(cfg.steps, cfg.time_budget, "steps")
    budget = cfg.time_budget
    if budget is None and device_type == "cpu":
        budget = cfg.effort_seconds(pixels)
    if budget is None:
        effort = cfg.effort if cfg.effort is not None else DEFAULT_EFFORT
        return StepPlan(max(min_steps, int(DEFAULT_STEPS * 2.0 ** (effort - DEFAULT_EFFORT))), None, "effort")
    steps = int(max(0.0, budget * PLAN_SHARE - fixed_seconds) / seconds_per_step)
    if device_type != "cpu":
        return StepPlan(max(DEFAULT_STEPS, steps), budget, "budget")
    return StepPlan(min(MAX_PLANNED_STEPS, max(min_steps, steps)), budget, "budget")
