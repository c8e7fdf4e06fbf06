"""image -> `.inr` bytes for the latent-grid family (architecture 3, `codec.latentgrid`).

Rate-distortion training, as the overfitted latent codecs (Cool-chic, C3) do it: the loss is
MSE + lambda x (estimated bits per pixel of the latents), with the bits from a zero-mean Laplace
per level and neighbour-context class (bitstream's NEIGHBOUR_CONTEXT classes; the scales learned) evaluated on
the latents plus uniform noise (a differentiable stand-in for rounding); the last FINAL_FRACTION of the steps rounds the latents and the synthesis weights
(straight-through, at the synthesis steps chosen per file: choose_synthesis_steps) so the network
learns what the decoder will get. Rate control happens inside that one fit: lambda starts from a
measured rate model and is steered towards the target rate while the noise phase runs. The rounded
latents are then moved towards zero where that pays (codec.latent_rounding), the file is entropy-coded
with the codec's own per-tensor models, and when it is still over the target the latents'
quantization step is coarsened (bisection on the real file size) until it fits.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

import bitstream
from bitstream import Header, LatentGrid, TensorRecord, choose_model
from bitstream.architectures import SAMPLING_IDS
from bitstream.entropy import NEIGHBOUR_CLASSES, header_bytes, measure_bits

from .config import DEFAULT_CPU_TIME_BUDGET, EncoderConfig
from .decoder import decode_array
from .devices import resolve_device
from .encoder import FLAT_BIAS_STEP, EncodeResult, image_tensors
from .errors import OptionError
from .fitting import mse_to_psnr
from .latent_rounding import context_classes, rd_round
from .latentgrid import LatentGridInr
from .metrics import mse as mse_8bit, psnr
from .progress import Progress
from .quantization import fake_quantize, float16_at_least, quantize

LEVELS = 8  #: latent grids, level l at 1/2**l of the image side (fewer for tiny images); 8 beat 7 on the proxy (README)
LEVEL_CHANNELS = 1  #: channels per grid
SYNTH_WIDTH, SYNTH_LAYERS = 24, 2  #: the synthesis MLP: 8 -> 24 -> 24 -> C, 840 multiply-adds per pixel (RGB)
MLP_LR_FACTOR = 0.5  #: the MLP and the rate model learn at this share of the latents' rate (cfg.fit_lr, cosine to 5 %)
FINAL_FRACTION = 0.05  #: share of the steps on rounded latents and quantized synthesis weights (kodim01, 0.3 bpp,
#: 1000 steps: 0.2 -> 0.275 bpp / 23.16 dB, 0.1 -> 0.298 / 23.88, 0.05 -> 0.294 / 24.03)
SYNTH_STEP, SYNTH_OUTPUT_STEP = 2.0**-8, 2.0**-6  #: quantization steps of the MLP's hidden and output layers
#: (hidden, output) multiples of those steps the fit tries at its rate calibrations and when its rounding phase starts, keeping the one of least
#: whole-image MSE + lambda x the MLP's coded bits per pixel (the MLP was 12.9 % of kodim01's 0.15 bpp file at 1 / 1;
#: requantizing kodim01's 0.15 bpp file at 4 / 1 saved 206 of its 7,187 bytes for 0.02 dB,
#: benchmarks/results/latent_settings/)
SYNTH_STEP_FACTORS = ((1, 1), (2, 1), (4, 1), (2, 2), (4, 2), (8, 2))
SYNTH_CHOICE_PIXELS = 262_144  #: at most this many pixels (evenly spaced) score each choice
#: after the fit, move rounded latents towards zero where MSE + lambda x bits falls (codec.latent_rounding);
#: one kodim23 fit at 0.6 bpp: 30,977 -> 29,532 bytes and 36.16 -> 36.62 dB (benchmarks/results/latent_settings/)
RD_ROUNDING = True
RD_ROUNDING_MOVES = ("towards-zero",)  #: the move sets tried (codec.latent_rounding.MOVES), the best file kept; "either" too: README
RD_ROUNDING_SWEEPS = 1  #: passes over the grids per move set (each from the last one's latents)
#: when the rounded file is still over the budget: lambda multiples tried (towards zero) before the latents'
#: step is coarsened (kodim23 at 0.6 bpp: its rounded file 41 bytes over, the coarser step took it from
#: 36.62 to 34.62 dB)
RD_ROUNDING_LAMBDA_FACTORS = (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
#: lambda for a latent rate of r bits per pixel, fitted to benchmarks/results/latent_probe/ (kodim23,
#: 400 steps: lambda 0.0005 -> 1.88, 0.005 -> 0.65, 0.02 -> 0.25 bpp): lambda = LAMBDA_AT_REF x (REF_BPP / r)**1.7
LAMBDA_AT_REF, REF_BPP, LAMBDA_EXPONENT = 0.02, 0.25, 1.7
DEFAULT_LAMBDA = 0.005  #: without a rate target (--bits)
#: per step, log(lambda) moves by CONTROL_TOTAL / steps x log(estimated rate / target), that error clamped
#: to +-1 (a log, so that a rate at half the target pulls as hard as one at twice it: with "ratio - 1" the
#: rate of kodim03 stayed at 0.59 of a 0.15 bpp target), from CONTROL_START of the steps to the end (the rounding phase included: left alone, the rate of
#: the rounded latents grew there by a third, kodim01 at 0.3 bpp): over a whole fit lambda can move by at
#: most e**(CONTROL_TOTAL * 0.7), however many steps (the rate answers lambda slowly; a per-step gain that
#: ignores the step count drove lambda up e**35-fold in 2000 steps and the file to 0.02 bpp). 600-step fits
#: (`inr-encode --arch latent --bpp B --steps 600` with OMP_NUM_THREADS=1),
#: one thread, file bpp at targets kodim03 0.15 / kodim03 1.2 / kodim01 0.3 / kodim05 0.6: CONTROL_TOTAL 4 with
#: "ratio - 1" and no calibration 0.089 / 0.903 / - / -; 8 with both 0.116 / 1.016; 16: 0.150 / 1.112 / 0.298 / 0.585
CONTROL_TOTAL = 16.0
CONTROL_START = 0.1
CONTROL_CLAMP = 1.0
CONTROL_EVERY = 5  #: steps between two rate checks of the controller
#: shares of the steps (and the rounding phase's start): the first rate check at or after each rescales the controller's estimate to the
#: entropy coder's real rate of the latents (the Laplace estimate was 13 % over it on kodim03 at 1.2 bpp)
CALIBRATE_AT = (0.3, 0.55, 0.8)
ROUNDING_CONTROL_FACTOR = 5.0  #: the controller's gain in the rounding phase, where the rate moves fastest
LATENT_STEP_RANGE = (1.0, 8.0)  #: the latents' quantization step searched when the file is over the target
#: CPU seconds of one step: per pixel of its batch (sampling, MLP, backward) and per latent (rate term,
#: Adam), at 768x512 (7 levels, 24 x 2 synthesis, 65,536-pixel batches, torch 2.13; 8 levels take no measurably
#: longer: proxy encodes at 5afb3cf, README) on our 2 idle cores:
#: 0.044 s a step (`python -m benchmarks.gpu_latent probe --device cpu --batch-pixels 65536`), and a whole
#: kodim05 encode of 2,179 steps took 113 s (`inr-encode --arch latent --preset high`), so the 150 s budget
#: plans 2,700 steps (about 135 s). One thread beside another job is slower (0.060 s a step): such runs
#: reach the 150 s cap.
#: Bicubic sampling costs more per pixel (grid_sample's 4 x 4 taps on the six coarser grids; the finest is
#: read directly): 0.057-0.067 s against 0.043-0.045 s a bilinear step, alternating runs of 100 steps
#: (kodim23, 65,536 pixels, 2 threads, 2026-11-26), so it plans about 2,070 steps where bilinear plans 2,702.
CPU_SECONDS_PER_PIXEL_STEP = {bitstream.BILINEAR: 4.84e-7, bitstream.BICUBIC: 6.9e-7}
CPU_SECONDS_PER_LATENT_STEP = 2.42e-8
#: pixels of the distortion term per step on the CPU (the whole image on a GPU). kodim01 at 0.3 bpp: 400
#: whole-image steps (218 s) gave 0.161 bpp / 21.93 dB, 2000 steps of 65,536 pixels (297 s) 0.280 / 23.04 dB
CPU_BATCH_PIXELS = 65536
PLAN_SHARE = 0.8
EST_BITS_PER_MLP_WEIGHT = 7  #: to set the latents' share of the rate before fitting
MIN_STEPS, MAX_STEPS = 50, 20_000
#: "auto" encodes with this family only where header and MLP take at most this share of the target size
#: (estimated: Kodak 768x512 11 % at 0.15 bpp, where the family beats the SIREN, README; 256x256 34 % at 0.3 bpp)
AUTO_MAX_FIXED_SHARE = 0.25
DEFAULT_GPU_STEPS = 2000


def levels_for(width: int, height: int) -> int:
    """LEVELS, or fewer so the coarsest grid still has at least 2 cells along the longer side."""
    levels = LEVELS
    while levels > 1 and -(-max(width, height) // 2 ** (levels - 1)) < 2:
        levels -= 1
    return levels


def default_grid(width: int, height: int, sampling: int = bitstream.BILINEAR) -> LatentGrid:
    """The grids this encoder gives a width x height image, sampled bilinearly or bicubically."""
    return LatentGrid(width, height, levels_for(width, height), LEVEL_CHANNELS, sampling)


def laplace_bits(values: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Bits of each (noisy) integer under a zero-mean Laplace of scale exp(log_scale), quantized to bins of 1."""
    b = torch.exp(log_scale).clamp_min(1e-3)

    def cdf(x):
        return 0.5 + 0.5 * torch.sign(x) * (1 - torch.exp(-x.abs() / b))

    return -torch.log2((cdf(values + 0.5) - cdf(values - 0.5)).clamp_min(1e-9))


class _ScaleOfClass(torch.autograd.Function):
    """table[classes], whose backward sums the gradient per class with one bincount: a serial pass in a
    fixed order, 5x faster on the CPU than the scatter of an index's backward (0.5 vs 2.8 ms per 393,216
    latents, one thread)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(classes)
        ctx.n = table.numel()
        return table[classes]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (classes,) = ctx.saved_tensors
        return torch.bincount(classes.reshape(-1), weights=grad.reshape(-1), minlength=ctx.n).to(grad.dtype), None


def latent_bits(grid: torch.Tensor, log_scales: torch.Tensor, *, one_hot: bool | None = None) -> torch.Tensor:
    """Bits of every latent under a zero-mean Laplace whose scale is its context class's (log_scales: one per class).

    This is the NEIGHBOUR_CONTEXT model's cost (classes from the left, upper and upper-left latents),
    also when the file codes a grid with another context model: training on a prediction's cost
    instead gave no better files (ROW_PREDICT, kodim01 / kodim23 at 0.3 bpp, README), these classes
    did as well as the row-above ones they replaced (kodim01 at 0.3 bpp: 24.68 dB at 0.291 bpp against
    24.64 dB at 0.290, README), and the controller calibrates to the real coder's size anyway.

    The per-latent scale is gathered so that its gradient is cheap and repeatable: on the CPU by
    `_ScaleOfClass` (bincount), on a GPU by a one-hot product (bincount's atomics there crowd onto six
    addresses; the plain index's sort-and-scatter backward took 34 ms of a 39 ms step on an H100,
    benchmarks/results/gpu_h100_latent_probe). `one_hot` None: by the device; True/False forces it."""
    n = log_scales.numel()
    classes = context_classes(grid, n)
    if not (grid.device.type != "cpu" if one_hot is None else one_hot):
        return laplace_bits(grid, _ScaleOfClass.apply(log_scales, classes))
    onehot = (classes.unsqueeze(-1) == torch.arange(n, device=grid.device)).to(grid.dtype)
    return laplace_bits(grid, onehot @ log_scales)


def stored_values(width: int, height: int, channels: int) -> int:
    """Values (latents and MLP) a file of this family stores for a width x height image."""
    grid = default_grid(width, height)
    return bitstream.parameter_count(bitstream.LATENT, SYNTH_WIDTH, SYNTH_LAYERS, channels, grid)


def fixed_bytes(pixels: np.ndarray, grid: LatentGrid) -> int:
    """Estimated bytes of a file's header and synthesis MLP (what its latents cannot use)."""
    mlp_values = stored_values(grid.width, grid.height, pixels.shape[2]) - grid.values()
    return len(flat_file(pixels, grid)) + mlp_values * EST_BITS_PER_MLP_WEIGHT // 8


def latent_fits(width: int, height: int, channels: int, target_bpp: float | None) -> bool:
    """Whether "auto" picks this family for such an image: decoders accept its file with their default
    parameter limit, and at the target rate the header and the synthesis MLP take at most
    AUTO_MAX_FIXED_SHARE of the file (so small images at low rates, where they would take most of it,
    go to the SIREN, whose network shrinks with the budget)."""
    if stored_values(width, height, channels) > bitstream.DEFAULT_MAX_PARAMETERS:
        return False
    if target_bpp is None:
        return True
    grid = default_grid(width, height)
    return fixed_bytes(np.zeros((height, width, channels), np.uint8), grid) <= AUTO_MAX_FIXED_SHARE * target_bpp * width * height / 8


def initial_lambda(latent_bpp: float) -> float:
    """Starting lambda for a latent rate target (bits per pixel), from the measured rate model."""
    return LAMBDA_AT_REF * (REF_BPP / max(latent_bpp, 1e-3)) ** LAMBDA_EXPONENT


def plan_latent_steps(cfg: EncoderConfig, *, batch_pixels: int, latents: int, device_type: str,
                      sampling: int = bitstream.BILINEAR) -> tuple[int, float | None]:
    """(steps, time cap): given steps; else planned up front from the time budget by the CPU cost model,
    so the bytes do not depend on the machine's load (the budget is only a cap)."""
    if cfg.steps is not None:
        return cfg.steps, cfg.time_budget
    budget = cfg.time_budget if cfg.time_budget is not None else (DEFAULT_CPU_TIME_BUDGET if device_type == "cpu" else None)
    if budget is None:
        return DEFAULT_GPU_STEPS, None
    per_step = CPU_SECONDS_PER_PIXEL_STEP[sampling] * batch_pixels + CPU_SECONDS_PER_LATENT_STEP * latents
    return min(MAX_STEPS, max(MIN_STEPS, int(budget * PLAN_SHARE / per_step))), budget


def synthesis_steps(n_tensors: int, factors: tuple[int, int] = (1, 1)) -> list[float]:
    """Quantization steps of the MLP's tensors (file order): SYNTH_STEP x factors[0] for the hidden layers,
    the (coarser) SYNTH_OUTPUT_STEP x factors[1] for the output layer."""
    hidden, output = factors
    return [SYNTH_OUTPUT_STEP * output if i >= n_tensors - 2 else SYNTH_STEP * hidden for i in range(n_tensors)]


def coded_bits(tensors, steps, *, entropy_models=None) -> int:
    """Bits the tensors take quantized at `steps`, each with the model the file would give it (header included)."""
    total = 0
    for tensor, step in zip(tensors, steps):
        symbols = quantize(tensor, step)
        model = choose_model(symbols, kinds=entropy_models)
        total += measure_bits(symbols, model) + 8 * header_bytes(model)
    return total


def choose_synthesis_steps(model: LatentGridInr, coords: torch.Tensor, target: torch.Tensor, lam: float, *,
                           entropy_models=None) -> list[float]:
    """The MLP's quantization steps (one of SYNTH_STEP_FACTORS) of least MSE + lam x its bits per pixel,
    the MSE of rounded latents and the quantized MLP on evenly spaced pixels of the image."""
    n_pix = coords.shape[0]
    idx = torch.arange(0, n_pix, max(1, -(-n_pix // SYNTH_CHOICE_PIXELS)), device=coords.device)
    mlp = model.parameters_in_file_order()[model.grid.levels:]
    with torch.no_grad():
        features = model.features(coords[idx], [torch.round(g) for g in model.latents])
        best = None
        for factors in SYNTH_STEP_FACTORS:
            steps = synthesis_steps(len(mlp), factors)
            out = model.synthesis(features, [fake_quantize(p, s) for p, s in zip(mlp, steps)])
            cost = float(torch.mean((out - target[idx]) ** 2)) + lam * coded_bits(mlp, steps, entropy_models=entropy_models) / n_pix
            if best is None or cost < best[0]:
                best = (cost, steps)
    return best[1]


def serialize(model: LatentGridInr, latent_step: float, *, synth_steps: list[float] | None = None,
              entropy_models=None) -> bytes:
    """The `.inr` file of `model` with its latents quantized at `latent_step` (a float16 value) and its
    MLP at `synth_steps` (file order; default synthesis_steps)."""
    grid = model.grid
    params = model.parameters_in_file_order()
    mlp_steps = synthesis_steps(len(params) - grid.levels) if synth_steps is None else list(synth_steps)
    steps = [latent_step] * grid.levels + mlp_steps
    symbols = [quantize(p, s) for p, s in zip(params, steps)]
    records = [TensorRecord(s, choose_model(q, kinds=entropy_models)) for s, q in zip(steps, symbols)]
    header = Header(width=grid.width, height=grid.height, channels=model.layers[-1].out_features,
                    arch=bitstream.LATENT, hidden_width=model.layers[0].out_features,
                    hidden_layers=len(model.layers) - 1, omega0=1.0, init_id=0, tensors=tuple(records),
                    latent_levels=grid.levels, latent_channels=grid.channels, latent_sampling=grid.sampling)
    return bitstream.write_file(header, symbols)


def fit_to_budget(model: LatentGridInr, budget_bytes: int | None, *, synth_steps: list[float] | None = None,
                  entropy_models=None) -> tuple[bytes, float]:
    """(file, latent step): step 1, or the finest step in LATENT_STEP_RANGE whose file fits the budget."""
    lo, hi = LATENT_STEP_RANGE
    data = serialize(model, lo, synth_steps=synth_steps, entropy_models=entropy_models)
    if budget_bytes is None or len(data) <= budget_bytes:
        return data, lo
    coarsest = serialize(model, hi, synth_steps=synth_steps, entropy_models=entropy_models)
    if len(coarsest) > budget_bytes:
        return coarsest, hi
    best = (coarsest, hi)
    for _ in range(12):  # bisection on the file size, which falls as the step grows
        mid = float16_at_least(0.5 * (lo + hi))
        if mid in (lo, hi):
            break
        data = serialize(model, mid, synth_steps=synth_steps, entropy_models=entropy_models)
        if len(data) <= budget_bytes:
            hi, best = mid, (data, mid)
        else:
            lo = mid
    return best


def file_cost(data: bytes, pixels: np.ndarray, lam: float, device) -> float:
    """The fit's loss of a file: MSE of its decoding (values in [-1, 1]) + lam x its bits per pixel."""
    error = mse_8bit(decode_array(data, device=str(device)), pixels) * (2 / 255) ** 2
    return error + lam * 8 * len(data) / (pixels.shape[0] * pixels.shape[1])


def round_latents_for_rate(model: LatentGridInr, target: torch.Tensor, pixels: np.ndarray, lam: float,
                           synth_steps: list[float], *, device, budget_bytes: int | None = None,
                           entropy_models=None) -> tuple[int, str]:
    """Replace the model's latents by a rate-distortion optimised rounding (codec.latent_rounding): of the
    plain rounding and each of RD_ROUNDING_MOVES (RD_ROUNDING_SWEEPS passes each), the one whose real file
    (latent step 1) has the least MSE + lam x rate, among those within `budget_bytes` or, when the plain
    file is over it, no larger than the plain file (a larger file would have its latents' step coarsened
    further, which costs more than the moves gain: kodim01 at 0.15 bpp, "either" moves gave an 8,760-byte
    file of lower loss than the 8,349-byte plain one, and coarsened to the 7,372-byte budget it decoded to
    20.3 dB instead of 23.3). If the kept file is still over the budget, the towards-zero rounding is redone at
    lambda x each of RD_ROUNDING_LAMBDA_FACTORS until one fits. Returns (latents moved, the moves kept: ""
    for the plain rounding)."""
    start = [g.detach().clone() for g in model.latents]

    def use(latents) -> None:
        with torch.no_grad():
            for g, q in zip(model.latents, latents):
                g.copy_(q)

    def file_of() -> bytes:
        return serialize(model, 1.0, synth_steps=synth_steps, entropy_models=entropy_models)

    plain = file_of()
    limit = None if budget_bytes is None else max(budget_bytes, len(plain))
    best = (file_cost(plain, pixels, lam, device), 0, "", [torch.round(g) for g in start], len(plain))
    for moves in RD_ROUNDING_MOVES:
        use(start)
        moved, rounded = _sweeps(model, target, lam, synth_steps, moves)
        data = file_of()
        if moved and (limit is None or len(data) <= limit):
            cost = file_cost(data, pixels, lam, device)
            if cost < best[0]:
                best = (cost, moved, moves, rounded, len(data))
    if budget_bytes is not None and best[4] > budget_bytes:
        # still over the budget: the latents' step would be coarsened, which re-rounds every latent. Trade
        # rate for distortion at a higher lambda instead, the least of RD_ROUNDING_LAMBDA_FACTORS that fits.
        for factor in RD_ROUNDING_LAMBDA_FACTORS:
            use(start)
            moved, rounded = _sweeps(model, target, lam * factor, synth_steps, "towards-zero")
            if moved and len(file_of()) <= budget_bytes:
                best = (None, moved, f"towards-zero, lambda x {factor:g}", rounded, None)
                break
    use(best[3])
    return best[1], best[2]


def _sweeps(model: LatentGridInr, target: torch.Tensor, lam: float, synth_steps: list[float], moves: str):
    """(latents moved, rounded latents) after RD_ROUNDING_SWEEPS passes of rd_round, the model's latents set
    to each pass's result."""
    moved = 0
    rounded = [torch.round(g.detach()) for g in model.latents]
    for _ in range(RD_ROUNDING_SWEEPS):
        rounded, moved_now = rd_round(model, target, lam, synth_steps, n_classes=NEIGHBOUR_CLASSES, moves=moves)
        with torch.no_grad():
            for g, q in zip(model.latents, rounded):
                g.copy_(q)
        moved += moved_now
        if not moved_now:
            break
    return moved, rounded


def flat_file(pixels: np.ndarray, grid: LatentGrid, *, entropy_models=None) -> bytes:
    """The trivial fallback: zero latents and weights, the output bias holding the mean colour."""
    channels = pixels.shape[2]
    model = LatentGridInr(channels=channels, hidden_width=SYNTH_WIDTH, hidden_layers=SYNTH_LAYERS, grid=grid)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        mean = pixels.reshape(-1, channels).astype(np.float64).mean(axis=0) / 127.5 - 1.0
        model.layers[-1].bias.copy_(torch.from_numpy(np.round(mean / FLAT_BIAS_STEP) * FLAT_BIAS_STEP).float())
    return serialize(model, 1.0, entropy_models=entropy_models)


def fit(model: LatentGridInr, coords: torch.Tensor, target: torch.Tensor, *, steps: int, lr: float, lam: float,
        latent_bpp_target: float | None, deadline: float | None, progress: Progress, batch_pixels: int,
        generator: torch.Generator, trace: list | None = None,
        coded_latent_bpp=None, entropy_models=None) -> tuple[int, bool, float, list[float]]:
    """Rate-distortion training of `model` in place: the distortion on `batch_pixels` random pixels per
    step (the whole image when it has no more), the rate on every latent. `trace`, if given, receives
    20 snapshots of lambda, the estimated latent rate and the batch PSNR. `coded_latent_bpp`, if given,
    returns the rate the entropy coder gives the current latents with the MLP quantized at the steps it
    is passed: at CALIBRATE_AT of the steps the controller rescales its estimate to it. At those points and
    when the rounding phase starts, the MLP's quantization steps are chosen anew (choose_synthesis_steps);
    the rounding phase trains at the last choice. Returns (steps run, stopped by the cap, final lambda, the MLP's quantization steps)."""
    levels = model.grid.levels
    n_pix = coords.shape[0]
    full_batch = batch_pixels >= n_pix
    matrices = model.image_matrices(coords.device) if full_batch else None
    mlp = list(model.layers.parameters())
    log_scales = torch.zeros(levels, NEIGHBOUR_CLASSES, device=coords.device, requires_grad=True)
    latents = list(model.latents)
    bases = (lr, lr * MLP_LR_FACTOR)
    opt = torch.optim.Adam([{"params": latents, "lr": bases[0]}, {"params": mlp + [log_scales], "lr": bases[1]}])
    final_from = int(steps * (1 - FINAL_FRACTION))
    control_from = int(steps * CONTROL_START)
    mlp_in_file_order = model.parameters_in_file_order()[levels:]  # weight, bias per layer
    mlp_steps = synthesis_steps(len(mlp_in_file_order))
    log_lam = math.log(lam)
    # the first rate check at or after each point calibrates (checks fall on every CONTROL_EVERY-th step)
    calibrate_at = sorted({int(steps * f) for f in CALIBRATE_AT} | {final_from}) if coded_latent_bpp is not None else []
    choose_at = set(calibrate_at) | {final_from}
    coded_per_estimated = 1.0
    t0 = time.monotonic()
    done, capped = 0, False
    for step in range(steps):
        if deadline is not None and time.monotonic() > deadline:
            capped = True
            break
        decay = 0.5 * (1 + math.cos(math.pi * step / steps)) * 0.95 + 0.05
        for group, base in zip(opt.param_groups, bases):
            group["lr"] = base * decay
        rounding = step >= final_from
        if step in choose_at:  # before the controller's calibrations, so they count the MLP's bits at these steps
            mlp_steps = choose_synthesis_steps(model, coords, target, math.exp(log_lam), entropy_models=entropy_models)
        if rounding:
            used = [g + (torch.round(g) - g).detach() for g in latents]
            weights = [fake_quantize(p, s) for p, s in zip(mlp_in_file_order, mlp_steps)]
        else:
            used = [g + torch.rand_like(g) - 0.5 for g in latents]
            weights = None
        if full_batch:
            features, want = model.image_features(matrices, used), target
        else:
            idx = torch.randint(0, n_pix, (batch_pixels,), generator=generator, device=generator.device)
            features, want = model.pixel_features(coords, idx, used), target[idx]
        out = model.synthesis(features, weights)
        mse = torch.mean((out - want) ** 2)
        bits = sum(latent_bits(u, log_scales[l]).sum() for l, u in enumerate(used))
        bpp = bits / n_pix
        loss = mse + math.exp(log_lam) * bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if latent_bpp_target is not None and step >= control_from and step % CONTROL_EVERY == 0:
            with torch.no_grad():  # the rate the rounded latents would have: the noisy proxy overstates it
                rounded = float(sum(latent_bits(torch.round(g), log_scales[l]).sum() for l, g in enumerate(latents))) / n_pix
            if calibrate_at and step >= calibrate_at[0]:
                coded_per_estimated = coded_latent_bpp(mlp_steps) / max(rounded, 1e-6)
                calibrate_at = [c for c in calibrate_at if c > step]
            error = math.log(max(rounded * coded_per_estimated, 1e-6) / latent_bpp_target)
            gain = CONTROL_EVERY * CONTROL_TOTAL / steps * (ROUNDING_CONTROL_FACTOR if rounding else 1.0)
            log_lam += gain * max(-CONTROL_CLAMP, min(CONTROL_CLAMP, error))
        if trace is not None and (step % max(1, steps // 20) == 0 or done == steps):
            trace.append({"step": done, "lambda": math.exp(log_lam), "latent_bpp": float(bpp.detach()),
                          "psnr": mse_to_psnr(float(mse.detach()))})
        if progress.enabled:
            elapsed = time.monotonic() - t0
            progress.update("rd-fit" if not rounding else "round", done, steps, loss=float(loss.detach()),
                            psnr=mse_to_psnr(float(mse.detach())), left=elapsed / done * (steps - done),
                            force=done in (1, steps))
    progress.close()
    return done, capped, math.exp(log_lam), mlp_steps


def encode_latent(pixels: np.ndarray, cfg: EncoderConfig) -> EncodeResult:
    """Encode an (H, W, C) uint8 array with the latent-grid family (cfg validated, cfg.arch == "latent")."""
    t0 = time.monotonic()
    height, width, channels = pixels.shape
    if cfg.hidden_width is not None or cfg.sparsity > 0:
        raise OptionError("the latent-grid family sizes its own network: hidden_width/hidden_layers and --sparsity "
                          "do not apply to it")
    device = resolve_device(cfg.device)
    progress = Progress(enabled=cfg.progress)
    grid = default_grid(width, height, SAMPLING_IDS[cfg.latent_sampling])
    limit = bitstream.DEFAULT_MAX_PARAMETERS
    stored = stored_values(width, height, channels)
    if stored > limit:
        raise OptionError(f"a {width}x{height} image needs {stored} latent values, more than decoders accept by "
                          f"default ({limit}); use --arch siren for images this large")
    batch = min(width * height, cfg.batch_pixels or (width * height if device.type == "cuda" else CPU_BATCH_PIXELS))
    steps, cap = plan_latent_steps(cfg, batch_pixels=batch, latents=grid.values(), device_type=device.type,
                                   sampling=grid.sampling)
    deadline = None if cap is None else t0 + cap
    budget_bytes = None if cfg.target_bpp is None else int(cfg.target_bpp * width * height // 8)
    torch.manual_seed(cfg.seed)
    model = LatentGridInr(channels=channels, hidden_width=SYNTH_WIDTH, hidden_layers=SYNTH_LAYERS, grid=grid).to(device)
    coords, target, flat_mse = image_tensors(pixels, device)
    if budget_bytes is None:
        latent_bpp, lam = None, DEFAULT_LAMBDA
    else:
        fixed = fixed_bytes(pixels, grid)
        latent_bpp = max(1e-3, 8 * (budget_bytes - fixed) / (width * height))
        lam = initial_lambda(latent_bpp)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    def coded_latent_bpp(synth_steps: list[float]) -> float:  # the real file's size at latent step 1, less the header and MLP estimate
        data = serialize(model, 1.0, synth_steps=synth_steps, entropy_models=cfg.entropy_models)
        return max(1e-6, 8 * (len(data) - fixed) / (width * height))

    run_steps, capped, lam, synth_steps = fit(
        model, coords, target, steps=steps, lr=cfg.fit_lr, lam=lam, latent_bpp_target=latent_bpp, deadline=deadline,
        progress=progress, batch_pixels=batch, generator=generator, entropy_models=cfg.entropy_models,
        coded_latent_bpp=None if budget_bytes is None else coded_latent_bpp)
    if RD_ROUNDING and not capped:
        moved, moves = round_latents_for_rate(model, target, pixels, lam, synth_steps, device=device,
                                              budget_bytes=budget_bytes, entropy_models=cfg.entropy_models)
        if moved:
            progress.message(f"rate-distortion rounding moved {moved} latents ({moves})")
    data, latent_step = fit_to_budget(model, budget_bytes, synth_steps=synth_steps, entropy_models=cfg.entropy_models)
    if budget_bytes is not None and len(data) > budget_bytes and cfg.bpp is not None:
        raise OptionError(f"bpp target {cfg.bpp:g} is too low for this image: the smallest latent-grid file is "
                          f"{len(data)} bytes ({8 * len(data) / (width * height):.3f} bpp)")
    quality = psnr(decode_array(data, device=str(device)), pixels)
    fallback = False
    if quality < mse_to_psnr(flat_mse) + 1.0:
        flat = flat_file(pixels, grid, entropy_models=cfg.entropy_models)
        flat_quality = psnr(decode_array(flat, device=str(device)), pixels)
        if flat_quality > quality:
            progress.message(f"the fitted grids decode to {quality:.2f} dB, below a flat image's {flat_quality:.2f} dB; "
                             "storing the flat image instead")
            data, quality, fallback = flat, flat_quality, True
    if latent_step > 1.0:
        progress.message(f"latents quantized at step {latent_step:g} to meet {cfg.target_bpp:g} bpp")
    return EncodeResult(
        data=data, width=width, height=height, channels=channels, bytes=len(data),
        bpp=8 * len(data) / (width * height), psnr=quality, steps=run_steps,
        seconds=time.monotonic() - t0, device=str(device), seed=cfg.seed,
        hidden_width=SYNTH_WIDTH, hidden_layers=SYNTH_LAYERS, quant_step=latent_step,
        sparsity=0.0, target_bpp=cfg.target_bpp, fit_attempts=1, time_capped=capped,
        flat_fallback=fallback, init="random", arch=cfg.arch,
    )
