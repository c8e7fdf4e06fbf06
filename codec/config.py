"""Encoder configuration: one frozen dataclass, named presets, and architecture sizing by rate."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bitstream import SIREN, architectures, multiply_adds, parameter_count

from .errors import OptionError

#: named operating points -> target bits per pixel
PRESETS: dict[str, float] = {"low": 0.15, "medium": 0.3, "high": 0.6, "max": 1.2}
DEFAULT_PRESET = "medium"
DEFAULT_CPU_TIME_BUDGET = 150.0  #: seconds; keeps a plain CPU encode of a Kodak image in minutes
DEFAULT_STEPS = 2000  #: steps when neither steps nor a time budget applies (a GPU encode)
#: planning steps from a time budget (CPU): the steps are chosen up front from a fixed cost model, so
#: the bytes do not depend on how busy the machine is; the budget itself is only a cap.
PLAN_SHARE = 0.8  #: share of the budget the planned steps are expected to take (the rest: rate search, decode)
MIN_PLANNED_STEPS, MAX_PLANNED_STEPS = 200, 20_000
#: under a time budget, rate control sizes the network no larger than one that gets this many steps,
#: and the rate left over buys finer quantization, so quality can only rise with the rate. Measured
#: on 6 full-size Kodak images with the 150 s CPU budget: 76 x 7 at 1335 steps (0.6 bpp) fitted
#: every image; at 1.2 bpp, 100 x 8 at 860 steps decoded worse than it on 3 of 6 images (PSNR fell
#: with rate), and so did 83 x 7 at 1211 steps (a floor of 1200) on 2 of 6, with one fit restarted
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
MAX_LAYERS = 8  #: deepest network rate control picks (EncoderConfig.max_layers)
EST_BITS_PER_WEIGHT = 6.5  #: entropy-coded 8-bit weight, measured on Kodak crops
EST_HEADER_BYTES_PER_TENSOR = 7
AUTO_ARCH = "auto"  #: the family picked per image by EncoderConfig.for_image
#: the family an encode uses unless told (`--arch`): "auto", the latent grids where they fit (they beat the
#: SIREN on the CPU proxy, README), else the SIREN
DEFAULT_ARCH = AUTO_ARCH
ARCH_CHOICES = (AUTO_ARCH, *architectures.IDS)  #: what `arch` / `--arch` accept
#: how the latent-grid family samples its grids (`--latent-sampling`); bicubic needs format version 4
LATENT_SAMPLING_CHOICES = tuple(architectures.SAMPLING_IDS)
DEFAULT_LATENT_SAMPLING = "bilinear"
#: fitting learning rate of each family (warm-up, then cosine decay). SIREN: see the ablation table;
#: Poly-INR: benchmarks/results/family_probe/ (kodim23 768x512, 56 x 6, 1000 steps of 16k pixels, float):
#: 2e-3 22.80 dB, 5e-3 23.99, 1e-2 24.78, 2e-2 25.44 (SIREN 58 x 6 at 2e-3: 30.80 dB); 1e-2 measured at
#: full size in benchmarks/results/ablation_polyinr_full/
#: latent grids: the latents' rate (the synthesis MLP gets half), benchmarks/results/latent_probe/
FIT_LR = {"siren": 2e-3, "poly": 1e-2, "latent": 5e-2}


@dataclass(frozen=True)
class EncoderConfig:
    """Every setting of an encode. Keyword-only; each CLI flag maps to one field.

    bpp / preset choose the architecture and quantization so the file is at most that rate;
    hidden_width + hidden_layers + bits fix them instead (no rate control).
    """

    bpp: float | None = None  #: target bits per pixel (the file is at most this)
    preset: str | None = None  #: a name in PRESETS (used when bpp is None)
    steps: int | None = None  #: total optimisation steps over all phases (None: DEFAULT_STEPS)
    time_budget: float | None = None  #: seconds for all phases (None: DEFAULT_CPU_TIME_BUDGET on CPU if steps is None too)
    device: str | None = None  #: "auto", "cpu" or "cuda"
    seed: int = 0  #: seeds initialisation and pixel sampling
    arch: str = DEFAULT_ARCH  #: network family, a name in bitstream.architectures ("siren", "poly", "latent") or "auto"
    hidden_width: int | None = None  #: fixed architecture (overrides rate-based sizing)
    hidden_layers: int | None = None
    bits: float | None = None  #: fixed quantization bit width (disables rate control)
    omega0: float = 30.0  #: SIREN's sine frequency factor (families without sines store 1.0)
    sparsity: float = 0.0  #: fraction of weights pruned by magnitude (biases are kept)
    lr: float | None = None  #: Adam learning rate of the fitting phase (None: the family's FIT_LR)
    warmup_fraction: float = 0.05  #: share of the fitting steps over which the learning rate rises (at least 50 steps)
    lr_scaling: str = "width"  #: per-layer learning rates: "width" (smaller for wide layers, see codec.siren) or "none"
    init: str = "random"  #: "random" (SIREN init from the seed) or "meta" (a packaged meta-learned init where one exists)
    qat_lr: float = 1e-4  #: learning rate of quantization-aware fine-tuning
    batch_pixels: int | None = None  #: pixels per step (None: whole image on GPU, <= 65536 on CPU)
    max_layers: int = MAX_LAYERS  #: deepest network rate control picks
    size_factor: float = 1.0  #: rate control sizes the network for this share of the rate's parameter budget
    quant_scheme: str = "shared"  #: rate control: "shared" base step for all sine layers, or "range" (per-tensor bits; ablation)
    qat_fraction: float = 0.05  #: share of the steps spent on quantization-aware fine-tuning (0: none; see the ablation)
    entropy_models: tuple[int, ...] | None = None  #: allowed bitstream model kinds (None: all; for ablations)
    latent_sampling: str = DEFAULT_LATENT_SAMPLING  #: latent grids: "bilinear" or "bicubic" sampling (other families: unused)
    convert: bool = False  #: convert 16-bit, CMYK and transparent images instead of refusing
    progress: bool = False  #: progress bar on stderr

    def validated(self) -> "EncoderConfig":
        """Check ranges and combinations; return self (with the default preset filled in)."""
        if self.bpp is not None and self.preset is not None:
            raise OptionError("give either a bpp target or a preset, not both")
        if self.bpp is not None and not (0 < self.bpp <= 64):
            raise OptionError(f"bpp target must be in (0, 64], got {self.bpp}")
        if self.arch not in ARCH_CHOICES:
            raise OptionError(f"unknown architecture {self.arch!r}: choose one of {', '.join(ARCH_CHOICES)}")
        if self.latent_sampling not in LATENT_SAMPLING_CHOICES:
            raise OptionError(f"unknown latent sampling {self.latent_sampling!r}: choose one of "
                              f"{', '.join(LATENT_SAMPLING_CHOICES)}")
        if self.lr is not None and not (0 < self.lr < math.inf):
            raise OptionError(f"learning rate must be a positive number, got {self.lr}")
        if self.preset is not None and self.preset not in PRESETS:
            raise OptionError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        if self.steps is not None and not (1 <= self.steps <= 10_000_000):
            raise OptionError(f"steps must be a positive integer, got {self.steps}")
        if self.time_budget is not None and not (0 < self.time_budget < math.inf):
            raise OptionError(f"time budget must be a positive number of seconds, got {self.time_budget}")
        if not 0 <= self.qat_fraction < 1:
            raise OptionError(f"qat_fraction must be in [0, 1), got {self.qat_fraction}")
        if not 0 <= self.sparsity < 1:
            raise OptionError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.bits is not None and not 2 <= self.bits <= 16:
            raise OptionError(f"bits must be in [2, 16], got {self.bits}")
        fixed = (self.hidden_width, self.hidden_layers)
        if any(v is not None for v in fixed) and None in fixed:
            raise OptionError("give both hidden_width and hidden_layers, or neither")
        if self.hidden_width is not None and not (1 <= self.hidden_width <= 1024 and 1 <= self.hidden_layers <= 32):
            raise OptionError("hidden_width must be in 1..1024 and hidden_layers in 1..32")
        if not MIN_LAYERS <= self.max_layers <= 32:
            raise OptionError(f"max_layers must be in {MIN_LAYERS}..32, got {self.max_layers}")
        if not 0.05 <= self.size_factor <= 1.0:
            raise OptionError(f"size_factor must be in [0.05, 1], got {self.size_factor}")
        if not 0 <= self.warmup_fraction <= 0.5:
            raise OptionError(f"warmup_fraction must be in [0, 0.5], got {self.warmup_fraction}")
        if self.lr_scaling not in ("none", "width"):
            raise OptionError(f"lr_scaling must be 'none' or 'width', got {self.lr_scaling!r}")
        if self.init not in ("random", "meta"):
            raise OptionError(f"init must be 'random' or 'meta', got {self.init!r}")
        if self.quant_scheme not in ("shared", "range"):
            raise OptionError(f"quant_scheme must be 'shared' or 'range', got {self.quant_scheme!r}")
        if not 0.1 <= self.omega0 <= 1000:
            raise OptionError(f"omega0 must be in [0.1, 1000], got {self.omega0}")
        if self.bpp is None and self.preset is None and self.bits is None:
            return replace(self, preset=DEFAULT_PRESET)
        return self

    def for_image(self, width: int, height: int, channels: int) -> "EncoderConfig":
        """This config with arch "auto" resolved for a width x height image: the latent-grid family, unless
        a SIREN-only setting is given (hidden_width/hidden_layers, bits, sparsity, init "meta"), the image's
        latents would pass the decoders' default parameter limit (above about 3 megapixels) or its header
        and synthesis MLP would take most of the target size (small images at low rates,
        `codec.latent_encoder.latent_fits`); then the SIREN."""
        if self.arch != AUTO_ARCH:
            return self
        siren_only = self.hidden_width is not None or self.bits is not None or self.sparsity > 0 or self.init == "meta"
        if siren_only:
            return replace(self, arch="siren")
        from .latent_encoder import latent_fits  # imports this module

        return replace(self, arch="latent" if latent_fits(width, height, channels, self.target_bpp) else "siren")

    @property
    def arch_id(self) -> int:
        """The family's id in the format (arch "auto" must be resolved first, by for_image)."""
        if self.arch == AUTO_ARCH:
            raise ValueError("arch 'auto' has no id: resolve it with EncoderConfig.for_image")
        return architectures.IDS[self.arch]

    @property
    def fit_lr(self) -> float:
        """The fitting learning rate: the given one, or the family's default."""
        return self.lr if self.lr is not None else FIT_LR[self.arch]

    @property
    def target_bpp(self) -> float | None:
        if self.bpp is not None:
            return self.bpp
        return PRESETS[self.preset] if self.preset is not None else None


def architecture_for_budget(n_params: float, channels: int, *, max_layers: int = MAX_LAYERS,
                            arch: int = SIREN) -> tuple[int, int]:
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


@dataclass(frozen=True)
class StepPlan:
    """How long an encode optimises: `steps` in all (fixed up front) and an optional wall-clock cap."""

    steps: int
    time_cap: float | None  #: seconds; reaching it stops early (the bytes then depend on the machine's speed)
    source: str  #: "steps" (given), "budget" (planned from a time budget) or "default"


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


def plan_steps(cfg: EncoderConfig, *, device_type: str, pixels: int, batch_pixels: int, hidden_width: int,
               hidden_layers: int, channels: int) -> StepPlan:
    """The step count and time cap of an encode.

    Given steps are used as they are (capped by a given time budget). Otherwise a time budget (the
    given one, or DEFAULT_CPU_TIME_BUDGET on the CPU) is turned into a step count by the fixed CPU
    cost model above, so the same command gives the same bytes on any machine that finishes
    within the cap. On a GPU without a budget: DEFAULT_STEPS.
    """
    if cfg.steps is not None:
        return StepPlan(cfg.steps, cfg.time_budget, "steps")
    budget = cfg.time_budget
    if budget is None and device_type == "cpu":
        budget = DEFAULT_CPU_TIME_BUDGET
    if budget is None:
        return StepPlan(DEFAULT_STEPS, None, "default")
    per_step = cpu_step_seconds(arch=cfg.arch_id, pixels=pixels, batch_pixels=batch_pixels, hidden_width=hidden_width,
                                hidden_layers=hidden_layers, channels=channels)
    if device_type != "cpu":  # no calibrated model for GPUs yet: the CPU model is a generous upper bound
        return StepPlan(max(DEFAULT_STEPS, int(budget * PLAN_SHARE / per_step)), budget, "budget")
    steps = int(budget * PLAN_SHARE / per_step)
    return StepPlan(min(MAX_PLANNED_STEPS, max(MIN_PLANNED_STEPS, steps)), budget, "budget")


def warmup_steps(fit_steps: int, fraction: float) -> int:
    """Warm-up steps of a fitting phase: `fraction` of it, at least 50 (when fraction > 0), at most a quarter."""
    if fraction <= 0:
        return 0
    return min(fit_steps // 4, max(50, round(fit_steps * fraction)))


def choose_architecture(cfg: EncoderConfig, n_params: float, channels: int, *, device_type: str, pixels: int,
                        batch_pixels: int) -> tuple[int, int]:
    """(hidden_width, hidden_layers) for a rate's parameter budget `n_params`.

    The network is sized for `cfg.size_factor * n_params` parameters; on the CPU it shrinks further
    (by 2 % at a time) until the plan of the time budget (the given one, else the default 150 s,
    also when `steps` is given) gives it at least MIN_TRAINED_STEPS steps. So `--steps N` on the
    CPU fits the same networks as the default encode, only for N steps: with the rate-only sizing,
    `--steps 2000` put kodim01 at 1.2 bpp in a 100 x 8 network that decoded to 21.78 dB, below its
    0.6 bpp file's 25.13 dB (benchmarks/results/kodak_limit6_steps2000/).
    """
    factor = cfg.size_factor
    sizing = replace(cfg, steps=None) if device_type == "cpu" else cfg  # the budget's plan sizes the network
    while True:
        width, layers = architecture_for_budget(n_params * factor, channels, max_layers=cfg.max_layers, arch=cfg.arch_id)
        plan = plan_steps(sizing, device_type=device_type, pixels=pixels, batch_pixels=batch_pixels,
                          hidden_width=width, hidden_layers=layers, channels=channels)
        if plan.source != "budget" or plan.steps >= MIN_TRAINED_STEPS or factor < 0.02 or width <= MIN_WIDTH:
            return width, layers
        factor *= 0.98
