"""Encoder settings: the user's options (`EncoderConfig`), named presets, and each family's expert
settings as frozen dataclasses (`MlpSettings` for the coordinate MLPs, `LatentSettings` for the latent
grids). Nothing here imports torch: the CLI builds its parser from this module.

Each option a user can give (a CLI flag, a keyword of `codec.encode`, a Pillow save parameter) is one
field of `EncoderConfig` named in `OPTIONS`; the family settings are for benchmarks and experiments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from bitstream import architectures

from .errors import OptionError
from .families.registry import family

#: named operating points -> target bits per pixel
PRESETS: dict[str, float] = {"low": 0.15, "medium": 0.3, "high": 0.6, "max": 1.2}
DEFAULT_PRESET = "medium"
#: effort levels (as cjxl --effort; higher is slower and better): the CPU time budget of level e for an
#: image of m megapixels is max(EFFORT_FLOOR_SECONDS[e - 1], EFFORT_SECONDS_PER_MEGAPIXEL[e - 1] x m)
#: seconds on 2 cores, so encode time grows at most linearly with the pixels
EFFORT_LEVELS = range(1, 10)
DEFAULT_EFFORT = 5
EFFORT_FLOOR_SECONDS = (10.0, 20.0, 40.0, 80.0, 150.0, 240.0, 360.0, 540.0, 800.0)
EFFORT_SECONDS_PER_MEGAPIXEL = (4.0, 8.0, 16.0, 32.0, 60.0, 96.0, 144.0, 216.0, 320.0)
DEFAULT_STEPS = 2000  #: steps when neither steps nor a time budget applies (a GPU encode)
AUTO_ARCH = "auto"  #: the family picked per image (codec.encoding.resolve_family)
DEFAULT_ARCH = AUTO_ARCH  #: the latent grids where they fit, else the SIREN
ARCH_CHOICES = (AUTO_ARCH, *architectures.IDS)  #: what `arch` / `--arch` accept
LATENT_SAMPLING_CHOICES = tuple(architectures.SAMPLING_IDS)  #: bicubic needs format version 4
DEFAULT_LATENT_SAMPLING = "bilinear"
INIT_CHOICES = ("random", "meta")


@dataclass(frozen=True)
class MlpSettings:
    """How the coordinate-MLP families (SIREN, Poly-INR) are sized, fitted and quantized."""

    hidden_width: int | None = None  #: fixed architecture (overrides rate-based sizing); give both or neither
    hidden_layers: int | None = None
    bits: float | None = None  #: fixed quantization bit width (disables rate control)
    omega0: float = 30.0  #: SIREN's sine frequency factor (families without sines store 1.0)
    warmup_fraction: float = 0.05  #: share of the fitting steps over which the learning rate rises (at least 50 steps)
    lr_scaling: str = "width"  #: per-layer learning rates: "width" (smaller for wide layers) or "none"
    qat_lr: float = 1e-4  #: learning rate of quantization-aware fine-tuning
    max_layers: int = 8  #: deepest network rate control picks
    size_factor: float = 1.0  #: rate control sizes the network for this share of the rate's parameter budget
    quant_scheme: str = "shared"  #: rate control: "shared" base step for all sine layers, or "range" (per-tensor bits)
    qat_fraction: float = 0.05  #: share of the steps spent on quantization-aware fine-tuning (0: none)

    def validated(self) -> "MlpSettings":
        if self.bits is not None and not 2 <= self.bits <= 16:
            raise OptionError(f"bits must be in [2, 16], got {self.bits}")
        fixed = (self.hidden_width, self.hidden_layers)
        if any(v is not None for v in fixed) and None in fixed:
            raise OptionError("give both hidden_width and hidden_layers, or neither")
        if self.hidden_width is not None and not (1 <= self.hidden_width <= 1024 and 1 <= self.hidden_layers <= 32):
            raise OptionError("hidden_width must be in 1..1024 and hidden_layers in 1..32")
        if not 2 <= self.max_layers <= 32:
            raise OptionError(f"max_layers must be in 2..32, got {self.max_layers}")
        if not 0.05 <= self.size_factor <= 1.0:
            raise OptionError(f"size_factor must be in [0.05, 1], got {self.size_factor}")
        if not 0 <= self.warmup_fraction <= 0.5:
            raise OptionError(f"warmup_fraction must be in [0, 0.5], got {self.warmup_fraction}")
        if self.lr_scaling not in ("none", "width"):
            raise OptionError(f"lr_scaling must be 'none' or 'width', got {self.lr_scaling!r}")
        if self.quant_scheme not in ("shared", "range"):
            raise OptionError(f"quant_scheme must be 'shared' or 'range', got {self.quant_scheme!r}")
        if not 0 <= self.qat_fraction < 1:
            raise OptionError(f"qat_fraction must be in [0, 1), got {self.qat_fraction}")
        if not 0.1 <= self.omega0 <= 1000:
            raise OptionError(f"omega0 must be in [0.1, 1000], got {self.omega0}")
        return self

    @property
    def fixed_size(self) -> bool:
        """Whether the network's size is given rather than chosen by rate control."""
        return self.hidden_width is not None


@dataclass(frozen=True)
class LatentSettings:
    """How the latent-grid family is shaped, fitted, rate-controlled and rounded (codec.encoding.latent).
    The measurements behind each default are in benchmarks/DECISIONS.md."""

    levels: int = 8  #: latent grids, level l at 1/2**l of the image side (fewer for tiny images)
    level_channels: int = 1  #: channels per grid
    synth_width: int = 24  #: the synthesis MLP: levels -> width (x layers) -> C, ReLU
    synth_layers: int = 2
    mlp_lr_factor: float = 0.5  #: the MLP and the rate model learn at this share of the fit's rate
    #: a fit on CPU batches with fewer steps than latent_lr_steps, or a batch covering less of the image
    #: than latent_lr_share, moves its latents at a higher rate, at most latent_lr_max x the fit's
    #: (codec.encoding.latent.latent_lr_scale)
    latent_lr_steps: int = 1200
    latent_lr_share: float = 1 / 6
    latent_lr_max: float = 4.0
    final_fraction: float = 0.05  #: share of the steps on rounded latents and quantized synthesis weights
    synth_step: float = 2.0**-8  #: quantization step of the MLP's hidden layers ...
    synth_output_step: float = 2.0**-6  #: ... and of its output layer
    #: (hidden, output) multiples of those steps tried at each rate calibration and when the rounding phase
    #: starts; the one of least whole-image MSE + lambda x the MLP's coded bits per pixel is kept
    synth_step_factors: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (4, 1), (2, 2), (4, 2), (8, 2))
    synth_choice_pixels: int = 262_144  #: at most this many pixels (evenly spaced) score each choice
    rd_rounding: bool = True  #: after the fit, move rounded latents towards zero where MSE + lambda x bits falls
    rd_rounding_moves: tuple[str, ...] = ("towards-zero",)  #: move sets tried (codec.encoding.latent_rounding.MOVES)
    rd_rounding_sweeps: int = 1  #: passes over the grids per move set
    #: lambda multiples tried (towards zero) when the rounded file is still over the budget, before the
    #: latents' step is coarsened
    rd_rounding_lambda_factors: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
    default_lambda: float = 0.005  #: without a rate target (--bits)
    #: the rate controller: per check, log(lambda) moves by control_every x control_total / steps x the log
    #: of estimated rate / target (clamped to +-control_clamp), from control_start of the steps to the end
    control_total: float = 16.0
    control_start: float = 0.1
    control_clamp: float = 1.0
    control_every: int = 5  #: steps between two rate checks
    #: shares of the steps at which the controller rescales its estimate to the entropy coder's real rate
    calibrate_at: tuple[float, ...] = (0.3, 0.55, 0.8)
    rounding_control_factor: float = 5.0  #: the controller's gain in the rounding phase
    latent_step_range: tuple[float, float] = (1.0, 8.0)  #: the latents' step searched when the file is over the target
    #: pixels of the distortion term per step on the CPU (the whole image on a GPU): this many, or this
    #: share of the image where that is more (the rate term covers every latent at every step, so a
    #: larger image's step is worth more pixels)
    cpu_batch_pixels: int = 65536
    cpu_batch_share: float = 1 / 24
    #: "auto" picks this family only where header and MLP take at most this share of the target size
    auto_max_fixed_share: float = 0.25

    def validated(self) -> "LatentSettings":
        if not 1 <= self.levels <= architectures.MAX_LATENT_LEVELS:
            raise OptionError(f"latent levels must be in 1..{architectures.MAX_LATENT_LEVELS}, got {self.levels}")
        if not 1 <= self.level_channels <= architectures.MAX_LATENT_CHANNELS:
            raise OptionError(f"latent channels must be in 1..{architectures.MAX_LATENT_CHANNELS}, got {self.level_channels}")
        if not (1 <= self.synth_width <= 1024 and 1 <= self.synth_layers <= 32):
            raise OptionError("synth_width must be in 1..1024 and synth_layers in 1..32")
        if not 0 <= self.final_fraction < 1:
            raise OptionError(f"final_fraction must be in [0, 1), got {self.final_fraction}")
        if self.control_every < 1 or self.cpu_batch_pixels < 1 or self.synth_choice_pixels < 1:
            raise OptionError("control_every, cpu_batch_pixels and synth_choice_pixels must be positive")
        if not (self.latent_lr_steps >= 1 and 0 < self.latent_lr_share <= 1 and 1 <= self.latent_lr_max <= 64):
            raise OptionError("latent_lr_steps must be positive, latent_lr_share in (0, 1] and latent_lr_max in [1, 64]")
        if not 0 < self.cpu_batch_share <= 1:
            raise OptionError(f"cpu_batch_share must be in (0, 1], got {self.cpu_batch_share}")
        return self


@dataclass(frozen=True)
class EncoderConfig:
    """Every setting of an encode. Keyword-only; each user option (OPTIONS) maps to one field.

    bpp / preset set the target rate (the file is at most that); `mlp.bits` with a fixed network size
    encodes without rate control.
    """

    bpp: float | None = None  #: target bits per pixel (the file is at most this)
    preset: str | None = None  #: a name in PRESETS (used when bpp is None)
    steps: int | None = None  #: total optimisation steps over all phases (None: planned from the time budget)
    time_budget: float | None = None  #: seconds for all phases (None: the effort's budget on CPU if steps is None too)
    effort: int | None = None  #: 1..9, the CPU time budget when neither steps nor time_budget is given (None: DEFAULT_EFFORT)
    device: str | None = None  #: "auto", "cpu" or "cuda"
    seed: int = 0  #: seeds initialisation and pixel sampling
    arch: str = DEFAULT_ARCH  #: network family, a name in bitstream.architectures ("siren", "poly", "latent") or "auto"
    sparsity: float = 0.0  #: SIREN / Poly-INR: fraction of weights pruned by magnitude (biases are kept)
    init: str = "random"  #: SIREN: "random" (init from the seed) or "meta" (a packaged meta-learned init where one exists)
    latent_sampling: str = DEFAULT_LATENT_SAMPLING  #: latent grids: "bilinear" or "bicubic" sampling
    convert: bool = False  #: convert 16-bit, CMYK and transparent images instead of refusing
    progress: bool = False  #: progress bar on stderr
    lr: float | None = None  #: learning rate of the fit (None: the family's default, codec.families.registry)
    batch_pixels: int | None = None  #: pixels per step (None: the whole image on a GPU, the family's batch on a CPU)
    entropy_models: tuple[int, ...] | None = None  #: allowed bitstream model kinds (None: all; for ablations)
    mlp: MlpSettings = field(default_factory=MlpSettings)  #: SIREN / Poly-INR expert settings
    latent: LatentSettings = field(default_factory=LatentSettings)  #: latent-grid expert settings

    @classmethod
    def from_options(cls, config: "EncoderConfig | None" = None, **options) -> "EncoderConfig":
        """`config` (default: the defaults) with the user options given by name; None leaves a field as it is.
        OptionError names an option that does not exist."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise OptionError(f"unknown encoder option {unknown[0]!r}: the options are {', '.join(OPTIONS)}")
        given = {k: v for k, v in options.items() if v is not None}
        return replace(config if config is not None else cls(), **given)

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
        if self.effort is not None and (isinstance(self.effort, bool) or self.effort not in EFFORT_LEVELS):
            raise OptionError(f"effort must be an integer from 1 to 9, got {self.effort!r}")
        if not 0 <= self.sparsity < 1:
            raise OptionError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.init not in INIT_CHOICES:
            raise OptionError(f"init must be 'random' or 'meta', got {self.init!r}")
        if self.batch_pixels is not None and self.batch_pixels < 1:
            raise OptionError(f"batch_pixels must be a positive integer, got {self.batch_pixels}")
        self.mlp.validated()
        self.latent.validated()
        if self.bpp is None and self.preset is None and self.mlp.bits is None:
            return replace(self, preset=DEFAULT_PRESET)
        return self

    @property
    def siren_only(self) -> bool:
        """Whether a setting only the coordinate MLPs have is given (then "auto" picks the SIREN)."""
        return self.mlp.fixed_size or self.mlp.bits is not None or self.sparsity > 0 or self.init == "meta"

    @property
    def arch_id(self) -> int:
        """The family's id in the format (arch "auto" must be resolved first, by codec.encoding.resolve_family)."""
        if self.arch == AUTO_ARCH:
            raise ValueError("arch 'auto' has no id: resolve it with codec.encoding.resolve_family")
        return architectures.IDS[self.arch]

    @property
    def fit_lr(self) -> float:
        """The fitting learning rate: the given one, or the family's default."""
        return self.lr if self.lr is not None else family(self.arch_id).fit_lr

    @property
    def target_bpp(self) -> float | None:
        if self.bpp is not None:
            return self.bpp
        return PRESETS[self.preset] if self.preset is not None else None

    def effort_seconds(self, pixels: int) -> float:
        """The CPU time budget of this effort level for an image of `pixels` pixels."""
        level = (self.effort if self.effort is not None else DEFAULT_EFFORT) - 1
        return max(EFFORT_FLOOR_SECONDS[level], EFFORT_SECONDS_PER_MEGAPIXEL[level] * pixels / 1e6)

    def budget_bytes(self, width: int, height: int) -> int | None:
        """The most bytes a width x height file may take at the target rate (None: no target)."""
        target = self.target_bpp
        return None if target is None else int(target * width * height // 8)


#: the options a user gives by name (CLI flags, `codec.encode` keywords, Pillow save parameters)
OPTIONS = ("bpp", "preset", "steps", "time_budget", "effort", "device", "seed", "arch", "sparsity", "init", "latent_sampling",
           "convert", "progress")
assert set(OPTIONS) <= {f.name for f in fields(EncoderConfig)}
