"""Encoder configuration: one frozen dataclass, named presets, and architecture sizing by rate."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bitstream import parameter_count

from .errors import OptionError

#: named operating points -> target bits per pixel
PRESETS: dict[str, float] = {"low": 0.15, "medium": 0.3, "high": 0.6, "max": 1.2}
DEFAULT_PRESET = "medium"
DEFAULT_CPU_TIME_BUDGET = 150.0  #: seconds; keeps a plain CPU encode of a Kodak image in minutes
DEFAULT_STEPS = 2000
MIN_WIDTH, MIN_LAYERS = 8, 2
EST_BITS_PER_WEIGHT = 6.5  #: entropy-coded 8-bit weight, measured on Kodak crops
EST_HEADER_BYTES_PER_TENSOR = 7


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
    hidden_width: int | None = None  #: fixed architecture (overrides rate-based sizing)
    hidden_layers: int | None = None
    bits: float | None = None  #: fixed quantization bit width (disables rate control)
    omega0: float = 30.0
    sparsity: float = 0.0  #: fraction of weights pruned by magnitude (biases are kept)
    lr: float = 2e-3  #: Adam learning rate of the fitting phase (cosine-decayed; see the ablation)
    qat_lr: float = 1e-4  #: learning rate of quantization-aware fine-tuning
    batch_pixels: int | None = None  #: pixels per step (None: whole image on GPU, <= 65536 on CPU)
    quant_scheme: str = "shared"  #: rate control: "shared" base step for all sine layers, or "range" (per-tensor bits; ablation)
    qat_fraction: float = 0.05  #: share of the steps spent on quantization-aware fine-tuning (0: none; see the ablation)
    entropy_models: tuple[int, ...] | None = None  #: allowed bitstream model kinds (None: all; for ablations)
    convert: bool = False  #: convert 16-bit, CMYK and transparent images instead of refusing
    progress: bool = False  #: progress bar on stderr

    def validated(self) -> "EncoderConfig":
        """Check ranges and combinations; return self (with the default preset filled in)."""
        if self.bpp is not None and self.preset is not None:
            raise OptionError("give either a bpp target or a preset, not both")
        if self.bpp is not None and not (0 < self.bpp <= 64):
            raise OptionError(f"bpp target must be in (0, 64], got {self.bpp}")
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
        if self.quant_scheme not in ("shared", "range"):
            raise OptionError(f"quant_scheme must be 'shared' or 'range', got {self.quant_scheme!r}")
        if not 0.1 <= self.omega0 <= 1000:
            raise OptionError(f"omega0 must be in [0.1, 1000], got {self.omega0}")
        if self.bpp is None and self.preset is None and self.bits is None:
            return replace(self, preset=DEFAULT_PRESET)
        return self

    @property
    def target_bpp(self) -> float | None:
        if self.bpp is not None:
            return self.bpp
        return PRESETS[self.preset] if self.preset is not None else None


def architecture_for_budget(n_params: float, channels: int) -> tuple[int, int]:
    """(hidden_width, hidden_layers) of the SIREN with about n_params parameters.

    Depth grows with the budget (deeper nets pay off only when wide enough): about 2 layers at
    1k parameters, 6 at 16k, capped at 8.
    """
    layers = int(min(8, max(MIN_LAYERS, round(2 + math.log2(max(n_params, 1) / 1000)))))
    best = MIN_WIDTH
    for width in range(MIN_WIDTH, 1025):
        if parameter_count(width, layers, channels) > n_params:
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
