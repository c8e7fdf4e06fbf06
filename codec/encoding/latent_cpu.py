"""The latent fit's per-latent work on the CPU in one pass (numba): each latent's context class, its
Laplace rate and the rate's gradients, its Adam update and the value the next step uses.

On the CPU this work is bound by memory, not arithmetic: done with torch it is some sixty passes over
every latent a step (the noise, the classes, the closed-form rate of codec.encoding.latent_step.LatentRate
and its gradients, Adam's moments), about 55 ns a latent on 2 cores, which for a photo of a few
megapixels is most of a step. Here it is one pass, in fixed chunks of rows whose partial sums are
added in chunk order, so the result does not depend on the thread count. The arithmetic is the same
as LatentRate's and torch's Adam (tests/test_latent_cpu.py compares them); the noise is a counter-based
hash of (seed, step, latent), so every latent's noise is fixed by the seed whatever the threads.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from .latent_step import MAX_BITS, MIN_PROBABILITY, LatentState

LN2 = math.log(2.0)
CHUNK_LATENTS = 16384  #: latents per chunk of rows (a chunk is a unit of work and of partial sums)
NOISE, ROUND = 0, 1  #: what the next step uses: the latents plus uniform noise, or rounded


@numba.njit(cache=True, inline="always")
def _uniform(seed: np.uint64, step: np.uint64, index: np.uint64) -> float:
    """A uniform number in [0, 1) from (seed, step, index): splitmix64's finaliser, its top 24 bits."""
    z = seed * np.uint64(0x9E3779B97F4A7C15) + step * np.uint64(0xBF58476D1CE4E5B9) + index
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(40)) * (1.0 / 16777216.0)


@numba.njit(cache=True, parallel=True)
def _perturb(flat, out, mode, seed, step):
    """out = flat + noise - 1/2 (mode NOISE) or round(flat) (mode ROUND)."""
    for i in numba.prange(flat.shape[0]):
        if mode == 0:
            out[i] = np.float32(flat[i] + np.float32(_uniform(np.uint64(seed), np.uint64(step), np.uint64(i)) - 0.5))
        else:
            out[i] = np.round(flat[i])


@numba.njit(cache=True, parallel=True)
def _update(flat, used, grad, exp_avg, exp_avg_sq, next_used, chunk_start, chunk_cols, chunk_row, chunk_rows,
            chunk_class, n_classes, inv_b, half_inv_b, e2h, bits_half, dlogb_half, rate_weight, lr, beta1, beta2,
            eps, bias1, bias2, mode, seed, step, want_bits, bits_out, dlogb_out):
    max_class = n_classes - 1
    for c in numba.prange(chunk_start.shape[0]):
        start, cols, row0, rows, class0 = chunk_start[c], chunk_cols[c], chunk_row[c], chunk_rows[c], chunk_class[c]
        total = 0.0
        for r in range(rows):
            row = row0 + r
            for j in range(cols):
                i = start + r * cols + j
                # the context class from the rounded left, upper and upper-left values (zeros outside)
                ctx = 0.0
                if j > 0:
                    ctx += 2.0 * abs(np.round(used[i - 1]))
                if row > 0:
                    ctx += 2.0 * abs(np.round(used[i - cols]))
                    if j > 0:
                        ctx += abs(np.round(used[i - cols - 1]))
                k = class0 + (max_class if ctx >= max_class else int(ctx))
                x = float(used[i])
                a = abs(x)
                ib = inv_b[k]
                d_a = 0.0
                if a < 0.5:
                    t = a * ib
                    hh = half_inv_b[k]
                    e1 = math.exp(t - hh)
                    e2 = e2h[k] / e1
                    p = 1.0 - 0.5 * (e1 + e2)
                    if p > MIN_PROBABILITY:  # then -log2 p < MAX_BITS
                        b = -math.log2(p) if want_bits else 0.0
                        scale = 1.0 / (p * LN2)
                        d_a = 0.5 * (e1 - e2) * ib * scale
                        dlogb_out[c, k] += -0.5 * ((t - hh) * e1 - (t + hh) * e2) * scale
                    else:
                        b = MAX_BITS
                else:
                    linear = (a - 0.5) * ib / LN2
                    b = bits_half[k] + linear
                    if b < MAX_BITS:
                        d_a = ib / LN2
                        dlogb_out[c, k] += dlogb_half[k] - linear
                    else:
                        b = MAX_BITS
                total += b
                g = float(grad[i]) + rate_weight * (d_a if x > 0.0 else (-d_a if x < 0.0 else 0.0))
                m = beta1 * float(exp_avg[i]) + (1.0 - beta1) * g
                v = beta2 * float(exp_avg_sq[i]) + (1.0 - beta2) * g * g
                exp_avg[i] = m
                exp_avg_sq[i] = v
                p_new = np.float32(float(flat[i]) - lr / bias1 * m / (math.sqrt(v) / math.sqrt(bias2) + eps))
                flat[i] = p_new
                if mode == 0:
                    next_used[i] = np.float32(p_new + np.float32(_uniform(np.uint64(seed), np.uint64(step), np.uint64(i)) - 0.5))
                else:
                    next_used[i] = np.round(p_new)
        bits_out[c] = total


def threads() -> int:
    """numba's threads for this pass: torch's intra-op count (what the batch runner and --threads set),
    at most numba's pool."""
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


class FusedLatents:
    """The latents of a LatentState, stepped on the CPU by `step` (rate + Adam in one pass).

    Args:
        state: the flat latents (its `flat` is updated in place).
        seed: the noise's seed.
        betas, eps: Adam's, as torch.optim.Adam.
    """

    def __init__(self, state: LatentState, seed: int, betas=(0.9, 0.999), eps: float = 1e-8):
        self.state = state
        self.flat = state.flat.detach().numpy()
        self.exp_avg = np.zeros_like(self.flat)
        self.exp_avg_sq = np.zeros_like(self.flat)
        self.used = np.empty_like(self.flat)
        self.next_used = np.empty_like(self.flat)
        self.seed, self.betas, self.eps, self.steps = seed, betas, eps, 0
        starts, cols, row0, nrows, classes = [], [], [], [], []
        for level, ((channels, rows, columns), offset) in enumerate(zip(state.shapes, state.offsets)):
            per_chunk = max(1, CHUNK_LATENTS // columns)
            for ch in range(channels):
                plane = offset + ch * rows * columns
                for r in range(0, rows, per_chunk):
                    starts.append(plane + r * columns)
                    cols.append(columns)
                    row0.append(r)
                    nrows.append(min(per_chunk, rows - r))
                    classes.append(level * state.n_classes)
        self.chunks = tuple(np.asarray(v, dtype=np.int64) for v in (starts, cols, row0, nrows, classes))
        self.mode = NOISE

    def begin(self, mode: int) -> np.ndarray:
        """The values the next step uses (a view kept by this object), from the latents as they are."""
        self.mode = mode
        numba.set_num_threads(threads())
        _perturb(self.flat, self.used, mode, self.seed, self.steps)
        return self.used

    def step(self, distortion_grad: np.ndarray, log_scales: np.ndarray, rate_weight: float, lr: float, *,
             want_bits: bool = True):
        """One Adam step of the latents on distortion_grad + rate_weight x d bits / d latent, the bits of
        the values the step used under the per-class Laplaces exp(log_scales) (flat, one per global class).
        Returns (bits of the used values, or None unless want_bits, d bits / d log_scales per class); the
        values the next step uses are then in `self.used`."""
        b = np.maximum(np.exp(log_scales.astype(np.float64)), 1e-3)
        inv_b = 1.0 / b
        h = 0.5 * inv_b
        e2h = np.exp(-2.0 * h)
        bits_half = -np.log2(np.maximum((1.0 - e2h) / 2.0, MIN_PROBABILITY))
        dlogb_half = 2.0 * h * e2h / (np.maximum(1.0 - e2h, 1e-300) * LN2)
        self.steps += 1
        beta1, beta2 = self.betas
        n_chunks = self.chunks[0].shape[0]
        numba.set_num_threads(threads())
        bits = np.zeros(n_chunks)
        dlogb = np.zeros((n_chunks, log_scales.shape[0]))
        _update(self.flat, self.used, distortion_grad, self.exp_avg, self.exp_avg_sq, self.next_used, *self.chunks,
                self.state.n_classes, inv_b, h, e2h, bits_half, dlogb_half, float(rate_weight), float(lr), beta1, beta2,
                self.eps, 1.0 - beta1 ** self.steps, 1.0 - beta2 ** self.steps, self.mode, self.seed, self.steps,
                want_bits, bits, dlogb)
        self.used, self.next_used = self.next_used, self.used
        per_class = dlogb.sum(axis=0) * (b > 1e-3)
        return (float(bits.sum()) if want_bits else None), per_class
