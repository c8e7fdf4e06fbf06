"""Per-tensor uniform quantization and its straight-through estimator for fine-tuning.

A weight w with step s is stored as q = round(w / s) and decoded as float32(q) * float32(s).
We use our own straight-through estimator instead of torchao's fake quantization: torchao's QAT
(0.18) targets int4/int8 linear layers of language models with scales from min/max, while we need
a per-tensor float16 step chosen by rate search and the exact float32 arithmetic the decoder
repeats; it also takes seconds to import and prints C-extension warnings on CPU-only machines.
"""
from __future__ import annotations

import numpy as np
import torch

from bitstream.entropy import MAX_ABS_LIMIT


def step_for_bits(weight: torch.Tensor, bits: float) -> float:
    """Float16 step giving about 2**bits levels over [-max|w|, max|w|]."""
    peak = float(weight.detach().abs().max())
    if peak == 0.0:
        return 1.0
    step = peak / (2.0 ** (bits - 1) - 0.5)
    return float16_at_least(max(step, peak / MAX_ABS_LIMIT, 2.0**-24))  # rounded up: |q| stays in the alphabet


def steps_for_bits(weights: list[torch.Tensor], bits: float) -> list[float]:
    """Per-tensor steps from each tensor's range: the fixed-bit-width scheme (``--bits``)."""
    return [step_for_bits(w, bits) for w in weights]


def float16_at_least(value: float) -> float:
    """The smallest float16 value that is at least `value`."""
    f16 = np.float16(value)
    if float(f16) < value:
        f16 = np.nextafter(f16, np.float16(np.inf))
    return float(f16)


#: step multipliers of the rate-controlled scheme: every sine layer's weights share one step (their
#: errors are all amplified by omega0 inside the sine); the linear output layer and the biases get
#: coarser steps (measured on Kodak crops: benchmarks/DECISIONS.md)
OUTPUT_STEP_FACTOR = 4.0
BIAS_STEP_FACTOR = 1.0


def steps_for_level(weights: list[torch.Tensor], level: float) -> list[float]:
    """Steps of the rate-controlled scheme: base step 2**-level shared by all sine-layer weights.

    A larger level is a finer step and a larger file. Tensors are in file order (weight, bias per
    layer, the output layer last).
    """
    base = 2.0 ** (-level)
    steps = []
    for i, w in enumerate(weights):
        step = base * (OUTPUT_STEP_FACTOR if i >= len(weights) - 2 else 1.0) * (BIAS_STEP_FACTOR if i % 2 else 1.0)
        peak = float(w.detach().abs().max())
        steps.append(float16_at_least(max(step, peak / MAX_ABS_LIMIT, 2.0**-24)))
    return steps


def fake_quantize(weight: torch.Tensor, step) -> torch.Tensor:
    """round(w / s) * s in the forward pass, identity gradient in the backward pass.

    `step` is a number, or a tensor that broadcasts against `weight` (one step per stacked network).
    """
    s = step if isinstance(step, torch.Tensor) else torch.tensor(step, dtype=weight.dtype, device=weight.device)
    quantized = torch.round(weight / s) * s
    return weight + (quantized - weight).detach()


def quantize(weight: torch.Tensor, step: float) -> np.ndarray:
    """Integer symbols of a tensor (int32), as stored in the file."""
    s = torch.tensor(step, dtype=torch.float32, device=weight.device)
    q = torch.round(weight.detach().to(torch.float32) / s)
    return q.clamp_(-MAX_ABS_LIMIT, MAX_ABS_LIMIT).to(torch.int32).cpu().numpy()
