"""image -> `.inr` bytes for the latent-grid family (architecture 3, `codec.families.latent`).

Rate-distortion training, as the overfitted latent codecs (Cool-chic, C3) do it: the loss is
MSE + lambda x (estimated bits per pixel of the latents), with the bits from a zero-mean Laplace
per level and neighbour-context class (bitstream's NEIGHBOUR_CONTEXT classes; the scales learned)
evaluated on the latents plus uniform noise (a differentiable stand-in for rounding); the last
`final_fraction` of the steps rounds the latents and the synthesis weights (straight-through, at the
synthesis steps chosen per file: choose_synthesis_steps) so the network learns what the decoder will
get. Rate control happens inside that one fit: lambda starts from a measured rate model and is steered
towards the target rate. The rounded latents are then moved towards zero where that pays
(codec.encoding.latent_rounding), the file is entropy-coded with the codec's own per-tensor models, and
when it is still over the target the latents' quantization step is coarsened (bisection on the real
file size) until it fits. Every setting is a field of `LatentSettings` (codec.config).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

import bitstream
from bitstream import LatentGrid, choose_model
from bitstream.architectures import SAMPLING_IDS
from bitstream.entropy import NEIGHBOUR_CLASSES, header_bytes, measure_bits
from bitstream.header import latent_limit, network_fits

from ..config import EncoderConfig, LatentSettings
from ..decoding import decode_array
from ..devices import resolve_device
from ..errors import OptionError
from ..families.latent.model import LatentGridInr
from ..metrics import mse as mse_8bit
from ..progress import Progress
from .common import EncodeResult, finest_within, flat_file as common_flat_file, image_tensors, keep_or_flat, plan_steps
from .common import serialize as serialize_model
from .fitting import mse_to_psnr
from .latent_rounding import rd_round
from .latent_cpu import NOISE, ROUND, FusedDistortion, FusedLatents, warm_up
from .latent_step import LatentState, batch_features, image_features, mse_of, pixel_axes, rate_bits
from .quantization import fake_quantize, float16_at_least, quantize

DEFAULTS = LatentSettings()
#: lambda for a latent rate of r bits per pixel, fitted to 400-step fits of one Kodak image (lambda 0.0005
#: -> 1.88, 0.005 -> 0.65, 0.02 -> 0.25 bpp): lambda = LAMBDA_AT_REF x (REF_BPP / r)**LAMBDA_EXPONENT
LAMBDA_AT_REF, REF_BPP, LAMBDA_EXPONENT = 0.02, 0.25, 1.7
#: CPU seconds of one step of the fit (codec.encoding.latent_cpu): per pixel of its batch (drawing it, the
#: samples, the MLP, the backward pass) and per latent (rate term, Adam, next noise, and the rate
#: controller's estimate every control_every steps), from fits at 768x512 and 2268x1512 on 2 cores
#: (torch 2.13, numba 0.68); bicubic sampling costs more per pixel (4 x 4 taps)
CPU_SECONDS_PER_PIXEL_STEP = {bitstream.BILINEAR: 3.0e-7, bitstream.BICUBIC: 5.2e-7}
CPU_SECONDS_PER_LATENT_STEP = 3.0e-8
#: CPU seconds of the rest of an encode (fixed_seconds): a constant and per pixel
CPU_SECONDS_FIXED, CPU_SECONDS_FIXED_PER_PIXEL = 3.0, 2.0e-5
MIN_PLANNED_STEPS = 50  #: the fewest steps a time budget plans
EST_BITS_PER_MLP_WEIGHT = 7  #: to set the latents' share of the rate before fitting


def levels_for(width: int, height: int, settings: LatentSettings = DEFAULTS) -> int:
    """settings.levels, or fewer so the coarsest grid still has at least 2 cells along the longer side."""
    levels = settings.levels
    while levels > 1 and -(-max(width, height) // 2 ** (levels - 1)) < 2:
        levels -= 1
    return levels


def default_grid(width: int, height: int, sampling: int = bitstream.BILINEAR,
                 settings: LatentSettings = DEFAULTS) -> LatentGrid:
    """The grids this encoder gives a width x height image, sampled bilinearly or bicubically."""
    return LatentGrid(width, height, levels_for(width, height, settings), settings.level_channels, sampling)


def new_model(channels: int, grid: LatentGrid, settings: LatentSettings = DEFAULTS) -> LatentGridInr:
    """A fresh model of these grids and the settings' synthesis MLP (uses the global torch seed)."""
    return LatentGridInr(channels=channels, hidden_width=settings.synth_width, hidden_layers=settings.synth_layers,
                         grid=grid)


def stored_values(width: int, height: int, channels: int, settings: LatentSettings = DEFAULTS) -> int:
    """Values (latents and MLP) a file of this family stores for a width x height image."""
    grid = default_grid(width, height, settings=settings)
    return bitstream.parameter_count(bitstream.LATENT, settings.synth_width, settings.synth_layers, channels, grid)


def decoders_accept(grid: LatentGrid, channels: int, settings: LatentSettings = DEFAULTS) -> bool:
    """Whether a decoder with default limits accepts a file of these grids and the settings' MLP."""
    return network_fits(bitstream.LATENT, settings.synth_width, settings.synth_layers, channels, grid)


def fixed_bytes(pixels: np.ndarray, grid: LatentGrid, settings: LatentSettings = DEFAULTS) -> int:
    """Estimated bytes of a file's header and synthesis MLP (what its latents cannot use)."""
    mlp_values = stored_values(grid.width, grid.height, pixels.shape[2], settings) - grid.values()
    return len(flat_file(pixels, grid, settings=settings)) + mlp_values * EST_BITS_PER_MLP_WEIGHT // 8


def latent_fits(width: int, height: int, channels: int, target_bpp: float | None,
                settings: LatentSettings = DEFAULTS) -> bool:
    """Whether "auto" picks this family for such an image: decoders accept its file with their default
    limits (bitstream.header.network_fits), and at the target rate the header and the synthesis MLP take at most
    settings.auto_max_fixed_share of the file (so small images at low rates, where they would take most
    of it, go to the SIREN, whose network shrinks with the budget)."""
    if not decoders_accept(default_grid(width, height, settings=settings), channels, settings):
        return False
    if target_bpp is None:
        return True
    grid = default_grid(width, height, settings=settings)
    fixed = fixed_bytes(np.zeros((height, width, channels), np.uint8), grid, settings)
    return fixed <= settings.auto_max_fixed_share * target_bpp * width * height / 8


def initial_lambda(latent_bpp: float) -> float:
    """Starting lambda for a latent rate target (bits per pixel), from the measured rate model."""
    return LAMBDA_AT_REF * (REF_BPP / max(latent_bpp, 1e-3)) ** LAMBDA_EXPONENT


def batch_pixels(pixels: int, given: int | None, device_type: str, settings: LatentSettings = DEFAULTS) -> int:
    """Pixels of the distortion term per step: the given number, the whole image on a GPU, else
    settings.cpu_batch_pixels or settings.cpu_batch_share of the image, whichever is more (at most all)."""
    if given:
        return min(pixels, given)
    if device_type == "cuda":
        return pixels
    return min(pixels, max(settings.cpu_batch_pixels, math.ceil(pixels * settings.cpu_batch_share)))


def latent_lr_scale(pixels: int, batch_pixels: int, steps: int, settings: LatentSettings = DEFAULTS) -> float:
    """The latents' learning rate as a multiple of the fit's, for a fit of `steps` steps on batches of
    `batch_pixels` of the image's `pixels`: 1 for whole-image batches; else (latent_lr_steps / steps) x
    sqrt(latent_lr_share / the batch's share), within [1, latent_lr_max]. Adam moves a latent that a
    share p of the steps sample (the finest grid's) by about lr x sqrt(p) a step, so a fit's latents travel
    about steps x lr x sqrt(p); the scale keeps that at least what it is in the fits the rate was tuned on
    (latent_lr_steps steps or more, latent_lr_share of the image a batch)."""
    share = batch_pixels / pixels
    if share >= 1:
        return 1.0
    scale = settings.latent_lr_steps / max(1, steps) * math.sqrt(settings.latent_lr_share / share)
    return min(settings.latent_lr_max, max(1.0, scale))


def seconds_per_step(batch_pixels: int, latents: int, sampling: int = bitstream.BILINEAR) -> float:
    """Modelled CPU seconds of one fitting step (the step planner's cost model)."""
    return CPU_SECONDS_PER_PIXEL_STEP[sampling] * batch_pixels + CPU_SECONDS_PER_LATENT_STEP * latents


def fixed_seconds(pixels: int) -> float:
    """Modelled CPU seconds of an encode's work besides its steps: the rate calibrations' files, the
    synthesis-step choices, the rate-distortion rounding, the budget search and the final decode."""
    return CPU_SECONDS_FIXED + CPU_SECONDS_FIXED_PER_PIXEL * pixels


def synthesis_steps(n_tensors: int, factors: tuple[int, int] = (1, 1), settings: LatentSettings = DEFAULTS) -> list[float]:
    """Quantization steps of the MLP's tensors (file order): synth_step x factors[0] for the hidden layers,
    the (coarser) synth_output_step x factors[1] for the output layer."""
    hidden, output = factors
    return [settings.synth_output_step * output if i >= n_tensors - 2 else settings.synth_step * hidden
            for i in range(n_tensors)]


def coded_bits(tensors, steps, *, entropy_models=None) -> int:
    """Bits the tensors take quantized at `steps`, each with the model the file would give it (header included)."""
    total = 0
    for tensor, step in zip(tensors, steps):
        symbols = quantize(tensor, step)
        model = choose_model(symbols, kinds=entropy_models)
        total += measure_bits(symbols, model) + 8 * header_bytes(model)
    return total


def choose_synthesis_steps(model: LatentGridInr, coords: torch.Tensor, target: torch.Tensor, lam: float, *,
                           entropy_models=None, settings: LatentSettings = DEFAULTS) -> list[float]:
    """The MLP's quantization steps (one of settings.synth_step_factors) of least MSE + lam x its bits per
    pixel, the MSE of rounded latents and the quantized MLP on evenly spaced pixels of the image."""
    n_pix = coords.shape[0]
    idx = torch.arange(0, n_pix, max(1, -(-n_pix // settings.synth_choice_pixels)), device=coords.device)
    mlp = model.parameters_in_file_order()[model.grid.levels:]
    with torch.no_grad():
        features = model.features(coords[idx], [torch.round(g) for g in model.latents])
        best = None
        for factors in settings.synth_step_factors:
            steps = synthesis_steps(len(mlp), factors, settings)
            out = model.synthesis(features, [fake_quantize(p, s) for p, s in zip(mlp, steps)])
            cost = float(torch.mean((out - target[idx]) ** 2)) + lam * coded_bits(mlp, steps, entropy_models=entropy_models) / n_pix
            if best is None or cost < best[0]:
                best = (cost, steps)
    return best[1]


def serialize(model: LatentGridInr, latent_step: float, *, synth_steps: list[float] | None = None,
              entropy_models=None, settings: LatentSettings = DEFAULTS) -> bytes:
    """The `.inr` file of `model` with its latents quantized at `latent_step` (a float16 value) and its
    MLP at `synth_steps` (file order; default synthesis_steps)."""
    grid = model.grid
    n_mlp = len(model.parameters_in_file_order()) - grid.levels
    mlp_steps = synthesis_steps(n_mlp, settings=settings) if synth_steps is None else list(synth_steps)
    return serialize_model(model, [latent_step] * grid.levels + mlp_steps, (grid.width, grid.height), kinds=entropy_models)


def fit_to_budget(model: LatentGridInr, budget_bytes: int | None, *, synth_steps: list[float] | None = None,
                  entropy_models=None, settings: LatentSettings = DEFAULTS) -> tuple[bytes, float]:
    """(file, latent step): step 1, or the finest step in settings.latent_step_range whose file fits the
    budget (the coarsest when none does)."""
    fine, coarse = settings.latent_step_range

    def file_at(step: float) -> bytes:
        return serialize(model, step, synth_steps=synth_steps, entropy_models=entropy_models, settings=settings)

    if budget_bytes is None:
        return file_at(fine), fine
    step, data, _ = finest_within(budget_bytes, file_at, fine, coarse, max_iterations=12,
                                  midpoint=lambda a, b: float16_at_least(0.5 * (a + b)))
    return data, step


def file_cost(data: bytes, pixels: np.ndarray, lam: float, device) -> float:
    """The fit's loss of a file: MSE of its decoding (values in [-1, 1]) + lam x its bits per pixel."""
    error = mse_8bit(decode_array(data, device=str(device)), pixels) * (2 / 255) ** 2
    return error + lam * 8 * len(data) / (pixels.shape[0] * pixels.shape[1])


def round_latents_for_rate(model: LatentGridInr, target: torch.Tensor, pixels: np.ndarray, lam: float,
                           synth_steps: list[float], *, device, budget_bytes: int | None = None,
                           entropy_models=None, settings: LatentSettings = DEFAULTS) -> tuple[int, str]:
    """Replace the model's latents by a rate-distortion optimised rounding (codec.encoding.latent_rounding):
    of the plain rounding and each of settings.rd_rounding_moves (rd_rounding_sweeps passes each), the one
    whose real file (latent step 1) has the least MSE + lam x rate, among those within `budget_bytes` or,
    when the plain file is over it, no larger than the plain file (a larger file would have its latents'
    step coarsened further, which costs more than the moves gain). If the kept file is still over the
    budget, the towards-zero rounding is redone at lambda x each of settings.rd_rounding_lambda_factors
    until one fits. Returns (latents moved, the moves kept: "" for the plain rounding)."""
    start = [g.detach().clone() for g in model.latents]

    def use(latents) -> None:
        with torch.no_grad():
            for g, q in zip(model.latents, latents):
                g.copy_(q)

    def file_of() -> bytes:
        return serialize(model, 1.0, synth_steps=synth_steps, entropy_models=entropy_models, settings=settings)

    plain = file_of()
    limit = None if budget_bytes is None else max(budget_bytes, len(plain))
    best = (file_cost(plain, pixels, lam, device), 0, "", [torch.round(g) for g in start], len(plain))
    for moves in settings.rd_rounding_moves:
        use(start)
        moved, rounded = _sweeps(model, target, lam, synth_steps, moves, settings)
        data = file_of()
        if moved and (limit is None or len(data) <= limit):
            cost = file_cost(data, pixels, lam, device)
            if cost < best[0]:
                best = (cost, moved, moves, rounded, len(data))
    if budget_bytes is not None and best[4] > budget_bytes:
        # still over the budget: the latents' step would be coarsened, which re-rounds every latent. Trade
        # rate for distortion at a higher lambda instead, the least of rd_rounding_lambda_factors that fits.
        for factor in settings.rd_rounding_lambda_factors:
            use(start)
            moved, rounded = _sweeps(model, target, lam * factor, synth_steps, "towards-zero", settings)
            if moved and len(file_of()) <= budget_bytes:
                best = (None, moved, f"towards-zero, lambda x {factor:g}", rounded, None)
                break
    use(best[3])
    return best[1], best[2]


def _sweeps(model: LatentGridInr, target: torch.Tensor, lam: float, synth_steps: list[float], moves: str,
            settings: LatentSettings):
    """(latents moved, rounded latents) after settings.rd_rounding_sweeps passes of rd_round, the model's
    latents set to each pass's result."""
    moved = 0
    rounded = [torch.round(g.detach()) for g in model.latents]
    for _ in range(settings.rd_rounding_sweeps):
        rounded, moved_now = rd_round(model, target, lam, synth_steps, n_classes=NEIGHBOUR_CLASSES, moves=moves)
        with torch.no_grad():
            for g, q in zip(model.latents, rounded):
                g.copy_(q)
        moved += moved_now
        if not moved_now:
            break
    return moved, rounded


def flat_file(pixels: np.ndarray, grid: LatentGrid, *, entropy_models=None, settings: LatentSettings = DEFAULTS) -> bytes:
    """The flat fallback (codec.encoding.common.flat_file) with these grids: latents at step 1, the MLP at
    its default steps."""
    model = new_model(pixels.shape[2], grid, settings)
    n_mlp = len(model.parameters_in_file_order()) - grid.levels
    steps = [1.0] * grid.levels + synthesis_steps(n_mlp, settings=settings)
    return common_flat_file(model, pixels, steps, kinds=entropy_models)


def fit(model: LatentGridInr, coords: torch.Tensor, target: torch.Tensor, *, steps: int, lr: float, lam: float,
        latent_bpp_target: float | None, deadline: float | None, progress: Progress, batch_pixels: int,
        generator: torch.Generator, trace: list | None = None, coded_latent_bpp=None, entropy_models=None,
        settings: LatentSettings = DEFAULTS) -> tuple[int, bool, float, list[float]]:
    """Rate-distortion training of `model` in place: the distortion on `batch_pixels` random pixels per
    step (the whole image when it has no more), the rate on every latent; the latents learn at `lr` x
    latent_lr_scale, the MLP and the rate model at `lr` x settings.mlp_lr_factor. `trace`, if given, receives
    20 snapshots of lambda, the estimated latent rate and the batch PSNR. `coded_latent_bpp`, if given,
    returns the rate the entropy coder gives the current latents with the MLP quantized at the steps it
    is passed: at settings.calibrate_at of the steps the controller rescales its estimate to it. At those
    points and when the rounding phase starts, the MLP's quantization steps are chosen anew
    (choose_synthesis_steps); the rounding phase trains at the last choice. Returns (steps run, stopped by
    the cap, final lambda, the MLP's quantization steps)."""
    s = settings
    levels = model.grid.levels
    n_pix = coords.shape[0]
    full_batch = batch_pixels >= n_pix
    state = LatentState(model, NEIGHBOUR_CLASSES)
    flat = state.flat
    on_cpu = flat.device.type == "cpu"
    # on the CPU the step runs in numba (codec.encoding.latent_cpu): the distortion half (samples, MLP,
    # gradients) and the latents' rate and Adam update; elsewhere in torch
    fused = FusedLatents(state, seed=generator.initial_seed()) if on_cpu else None
    distortion = FusedDistortion(state, model.grid.width, model.grid.height, model.grid.sampling, target) if on_cpu else None
    matrices = model.image_matrices(coords.device) if full_batch and not on_cpu else None
    target_cols = target.T.contiguous() if full_batch and not on_cpu else None
    axes = None if full_batch or on_cpu else pixel_axes(coords, model.grid.width)
    all_pixels = np.arange(n_pix, dtype=np.int64) if full_batch and on_cpu else None
    mlp = list(model.layers.parameters())
    log_scales = torch.zeros(levels, NEIGHBOUR_CLASSES, device=coords.device, requires_grad=True)
    bases = (lr * latent_lr_scale(n_pix, batch_pixels, steps, s), lr * s.mlp_lr_factor)
    groups = [{"params": mlp + [log_scales], "lr": bases[1], "base_lr": bases[1]}]
    if fused is None:
        groups.insert(0, {"params": [flat], "lr": bases[0], "base_lr": bases[0]})
    opt = torch.optim.Adam(groups, fused=True)
    mode = None
    final_from = int(steps * (1 - s.final_fraction))
    control_from = int(steps * s.control_start)
    mlp_in_file_order = model.parameters_in_file_order()[levels:]  # weight, bias per layer
    mlp_steps = synthesis_steps(len(mlp_in_file_order), settings=s)
    log_lam = math.log(lam)
    # the first rate check at or after each point calibrates (checks fall on every control_every-th step)
    calibrate_at = sorted({int(steps * f) for f in s.calibrate_at} | {final_from}) if coded_latent_bpp is not None else []
    choose_at = set(calibrate_at) | {final_from}
    coded_per_estimated = 1.0
    t0 = time.monotonic()
    done, capped = 0, False
    for step in range(steps):
        if deadline is not None and time.monotonic() > deadline:
            capped = True
            break
        decay = 0.5 * (1 + math.cos(math.pi * step / steps)) * 0.95 + 0.05
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * decay
        rounding = step >= final_from
        if step in choose_at:  # before the controller's calibrations, so they count the MLP's bits at these steps
            state.store(model)
            mlp_steps = choose_synthesis_steps(model, coords, target, math.exp(log_lam), entropy_models=entropy_models,
                                               settings=s)
        weights = [fake_quantize(p, q) for p, q in zip(mlp_in_file_order, mlp_steps)] if rounding else mlp_in_file_order
        opt.zero_grad(set_to_none=True)
        traced = trace is not None and (step % max(1, steps // 20) == 0 or step + 1 == steps)
        shown = traced or progress.enabled  # the step's bits are only reported
        if fused is not None:  # the values this step uses were computed by the last fused step (or anew)
            if mode != rounding:
                mode = rounding
                fused.begin(ROUND if rounding else NOISE)
            if full_batch:
                idx = all_pixels
            else:  # in image order, so the samples and their gradients read and write the grids in order
                idx = np.sort(torch.randint(0, n_pix, (batch_pixels,), generator=generator).numpy())
            mse, mlp_grads, latent_grad = distortion.step(fused.used, idx, weights)
            for p, g in zip(mlp_in_file_order, mlp_grads):
                p.grad = g
            bits, per_class = fused.step(latent_grad, log_scales.detach().reshape(-1).numpy(),
                                         math.exp(log_lam) / n_pix, bases[0] * decay, want_bits=shown)
            log_scales.grad = torch.from_numpy(per_class * (math.exp(log_lam) / n_pix)).float().reshape(log_scales.shape)
            bpp = bits / n_pix if shown else math.nan
            loss = mse + math.exp(log_lam) * bpp
        else:
            if rounding:
                used = flat + (torch.round(flat) - flat).detach()
            else:
                used = flat + (torch.rand(flat.shape, generator=generator, device=flat.device) - 0.5)
            grids = state.levels(used)
            if full_batch:
                features, want = image_features(model, grids, matrices), target_cols
            else:
                idx = torch.randint(0, n_pix, (batch_pixels,), generator=generator, device=generator.device)
                features, want = batch_features(model, grids, axes, idx), torch.index_select(target, 0, idx).T
            mse = mse_of(features, want, weights)
            bpp = rate_bits(state, used, log_scales) / n_pix
            loss = mse + math.exp(log_lam) * bpp
            loss.backward()
            mse, bpp, loss = float(mse.detach()), float(bpp.detach()), float(loss.detach())
        opt.step()
        done = step + 1
        if latent_bpp_target is not None and step >= control_from and step % s.control_every == 0:
            with torch.no_grad():  # the rate the rounded latents would have: the noisy proxy overstates it
                rounded = float(rate_bits(state, torch.round(flat), log_scales.detach())) / n_pix
            if calibrate_at and step >= calibrate_at[0]:
                state.store(model)
                coded_per_estimated = coded_latent_bpp(mlp_steps) / max(rounded, 1e-6)
                calibrate_at = [c for c in calibrate_at if c > step]
            error = math.log(max(rounded * coded_per_estimated, 1e-6) / latent_bpp_target)
            gain = s.control_every * s.control_total / steps * (s.rounding_control_factor if rounding else 1.0)
            log_lam += gain * max(-s.control_clamp, min(s.control_clamp, error))
        if traced:
            trace.append({"step": done, "lambda": math.exp(log_lam), "latent_bpp": bpp, "psnr": mse_to_psnr(mse)})
        if progress.enabled:
            elapsed = time.monotonic() - t0
            progress.update("rd-fit" if not rounding else "round", done, steps, loss=loss, psnr=mse_to_psnr(mse), left=elapsed / done * (steps - done),
                            force=done in (1, steps))
    state.store(model)
    progress.close()
    return done, capped, math.exp(log_lam), mlp_steps


def encode(pixels: np.ndarray, cfg: EncoderConfig) -> EncodeResult:
    """Encode an (H, W, C) uint8 array with the latent-grid family (cfg validated, its family resolved:
    codec.encoding.encode_pixels)."""
    t0 = time.monotonic()
    s = cfg.latent
    height, width, channels = pixels.shape
    if cfg.mlp.fixed_size or cfg.sparsity > 0:
        raise OptionError("the latent-grid family sizes its own network: hidden_width/hidden_layers and --sparsity "
                          "do not apply to it")
    device = resolve_device(cfg.device)
    progress = Progress(enabled=cfg.progress)
    grid = default_grid(width, height, SAMPLING_IDS[cfg.latent_sampling], s)
    if not decoders_accept(grid, channels, s):
        raise OptionError(f"a {width}x{height} image needs {grid.values()} latent values, more than decoders accept by "
                          f"default ({latent_limit(width, height)}); use --arch siren")
    batch = batch_pixels(width * height, cfg.batch_pixels, device.type, s)
    # the CPU step's kernels, compiled on a machine's first encode (then loaded from numba's cache): that time
    # counts neither in the plan nor against the time cap, so the first encode gives the bytes of the next
    ready = warm_up() if device.type == "cpu" else 0.0
    plan = plan_steps(cfg, device_type=device.type, seconds_per_step=seconds_per_step(batch, grid.values(), grid.sampling),
                      min_steps=MIN_PLANNED_STEPS, pixels=width * height, fixed_seconds=fixed_seconds(width * height))
    deadline = None if plan.time_cap is None else t0 + ready + plan.time_cap
    budget_bytes = cfg.budget_bytes(width, height)
    torch.manual_seed(cfg.seed)
    model = new_model(channels, grid, s).to(device)
    coords, target, flat_mse = image_tensors(pixels, device)
    if budget_bytes is None:
        latent_bpp, lam = None, s.default_lambda
    else:
        fixed = fixed_bytes(pixels, grid, s)
        latent_bpp = max(1e-3, 8 * (budget_bytes - fixed) / (width * height))
        lam = initial_lambda(latent_bpp)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)

    def coded_latent_bpp(synth_steps: list[float]) -> float:  # the real file at latent step 1, less the header and MLP estimate
        data = serialize(model, 1.0, synth_steps=synth_steps, entropy_models=cfg.entropy_models, settings=s)
        return max(1e-6, 8 * (len(data) - fixed) / (width * height))

    run_steps, capped, lam, synth_steps = fit(
        model, coords, target, steps=plan.steps, lr=cfg.fit_lr, lam=lam, latent_bpp_target=latent_bpp,
        deadline=deadline, progress=progress, batch_pixels=batch, generator=generator,
        entropy_models=cfg.entropy_models, coded_latent_bpp=None if budget_bytes is None else coded_latent_bpp,
        settings=s)
    if s.rd_rounding and not capped:
        moved, moves = round_latents_for_rate(model, target, pixels, lam, synth_steps, device=device,
                                              budget_bytes=budget_bytes, entropy_models=cfg.entropy_models, settings=s)
        if moved:
            progress.message(f"rate-distortion rounding moved {moved} latents ({moves})")
    data, latent_step = fit_to_budget(model, budget_bytes, synth_steps=synth_steps, entropy_models=cfg.entropy_models,
                                      settings=s)
    if budget_bytes is not None and len(data) > budget_bytes and cfg.bpp is not None:
        raise OptionError(f"bpp target {cfg.bpp:g} is too low for this image: the smallest latent-grid file is "
                          f"{len(data)} bytes ({8 * len(data) / (width * height):.3f} bpp)")
    data, quality, fallback = keep_or_flat(
        data, pixels, flat_mse=flat_mse, fit_failed=False, device=device, progress=progress,
        flat=lambda: flat_file(pixels, grid, entropy_models=cfg.entropy_models, settings=s))
    if latent_step > 1.0:
        progress.message(f"latents quantized at step {latent_step:g} to meet {cfg.target_bpp:g} bpp")
    return EncodeResult(
        data=data, width=width, height=height, channels=channels, bytes=len(data),
        bpp=8 * len(data) / (width * height), psnr=quality, steps=run_steps,
        seconds=time.monotonic() - t0, device=str(device), seed=cfg.seed,
        hidden_width=s.synth_width, hidden_layers=s.synth_layers, quant_step=latent_step,
        sparsity=0.0, target_bpp=cfg.target_bpp, fit_attempts=1, time_capped=capped,
        flat_fallback=fallback, init="random", arch=cfg.arch,
    )
