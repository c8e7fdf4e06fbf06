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
    step = max(step, peak / MAX_ABS_LIMIT, 2.0**-24)
    f16 = np.float16(step)
    if float(f16) < step:  # round up so |q| stays within the alphabet limit
        f16 = np.nextafter(f16, np.float16(np.inf))
    return float(f16)


def steps_for_bits(weights: list[torch.Tensor], bits: float) -> list[float]:
    return [step_for_bits(w, bits) for w in weights]


def fake_quantize(weight: torch.Tensor, step: float) -> torch.Tensor:
    """round(w / s) * s in the forward pass, identity gradient in the backward pass."""
    s = torch.tensor(step, dtype=weight.dtype, device=weight.device)
    quantized = torch.round(weight / s) * s
    return weight + (quantized - weight).detach()


def quantize(weight: torch.Tensor, step: float) -> np.ndarray:
    """Integer symbols of a tensor (int32), as stored in the file."""
    s = torch.tensor(step, dtype=torch.float32, device=weight.device)
    q = torch.round(weight.detach().to(torch.float32) / s)
    return q.clamp_(-MAX_ABS_LIMIT, MAX_ABS_LIMIT).to(torch.int32).cpu().numpy()
