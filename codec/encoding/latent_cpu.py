"""The latent fit's step on the CPU in two numba passes.

`FusedDistortion`: the grids' samples at a batch of pixels, the synthesis MLP, its squared error and
every gradient, over blocks of pixels whose activations stay in cache (in torch, each small matrix
product, grid_sample's backward and each ReLU mask is a pass over memory); the grids' gradients are then
gathered plane by plane in batch order.

`FusedLatents`: each latent's context class, its Laplace rate and the rate's gradients, its Adam update
and the value the next step uses.

On the CPU the per-latent work is bound by memory, not arithmetic: done with torch it is some sixty passes over
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

from ..families.latent.numpy import axis_taps
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


# --- the distortion half of a CPU step: samples at a batch of pixels, the synthesis MLP, its MSE and
# --- every gradient, in two passes (the MLP over blocks of pixels, the grids' gradients plane by plane)

@numba.njit(cache=True, fastmath=True)
def _plane_samples(used, start, cols, direct, ca, cw, ra, rw, rows, columns, count, out):
    """out[q] = the sample at pixel (rows[q], columns[q]) of the plane at `start` (`cols` cells wide) for
    q < count: its cell when `direct` (one cell a pixel), else through the taps (indices ca / ra, weights
    cw / rw, (taps, pixels) along x / y) of its level."""
    if direct:
        for q in range(count):
            out[q] = used[start + rows[q] * cols + columns[q]]
    elif ca.shape[0] == 2:  # bilinear, written out
        ca0, ca1, cw0, cw1, ra0, ra1, rw0, rw1 = ca[0], ca[1], cw[0], cw[1], ra[0], ra[1], rw[0], rw[1]
        for q in range(count):
            r, c = rows[q], columns[q]
            b0, b1, x0, x1 = start + ra0[r] * cols, start + ra1[r] * cols, ca0[c], ca1[c]
            out[q] = (rw0[r] * (cw0[c] * used[b0 + x0] + cw1[c] * used[b0 + x1])
                      + rw1[r] * (cw0[c] * used[b1 + x0] + cw1[c] * used[b1 + x1]))
    else:
        for q in range(count):
            r, c = rows[q], columns[q]
            v = np.float32(0.0)
            for a in range(ra.shape[0]):
                base = start + ra[a, r] * cols
                s = np.float32(0.0)
                for t in range(ca.shape[0]):
                    s += cw[t, c] * used[base + ca[t, c]]
                v += rw[a, r] * s
            out[q] = v


@numba.njit(cache=True)
def _plane_scatter(grad, start, cols, direct, ca, cw, ra, rw, index, width, g):
    """grad of the plane at `start` += the gradient of its samples at pixels `index` whose gradient is
    `g`, added in the order of `index` (the taps as in _plane_samples)."""
    for q in range(index.shape[0]):
        r = index[q] // width
        c = index[q] - r * width
        if direct:
            grad[start + r * cols + c] += g[q]
        elif ca.shape[0] == 2:
            b0, b1, x0, x1 = start + ra[0, r] * cols, start + ra[1, r] * cols, ca[0, c], ca[1, c]
            g0, g1 = g[q] * rw[0, r], g[q] * rw[1, r]
            grad[b0 + x0] += g0 * cw[0, c]
            grad[b0 + x1] += g0 * cw[1, c]
            grad[b1 + x0] += g1 * cw[0, c]
            grad[b1 + x1] += g1 * cw[1, c]
        else:
            for a in range(ra.shape[0]):
                base = start + ra[a, r] * cols
                ga = g[q] * rw[a, r]
                for t in range(ca.shape[0]):
                    grad[base + ca[t, c]] += ga * cw[t, c]


@numba.njit(cache=True, fastmath=True)
def _dense(x, y, w, b, count, relu):
    """y[:, :count] = w @ x[:, :count] + b (then max(., 0) when relu): w (out, in), rows of pixels."""
    dout, din = w.shape
    for o in range(dout):
        yo = y[o]
        bias = b[o]
        for q in range(count):
            yo[q] = bias
        j = 0
        while j + 4 <= din:  # four inputs a pass: fewer loads and stores of yo
            x0, x1, x2, x3 = x[j], x[j + 1], x[j + 2], x[j + 3]
            w0, w1, w2, w3 = w[o, j], w[o, j + 1], w[o, j + 2], w[o, j + 3]
            for q in range(count):
                yo[q] += w0 * x0[q] + w1 * x1[q] + w2 * x2[q] + w3 * x3[q]
            j += 4
        for j in range(j, din):
            xj, wj = x[j], w[o, j]
            for q in range(count):
                yo[q] += wj * xj[q]
        if relu:
            for q in range(count):
                yo[q] = max(yo[q], np.float32(0.0))


@numba.njit(cache=True, fastmath=True)
def _outer_sums(d, x, count, out, wo, bo):
    """out[wo:] = (d[:, :count] @ x[:, :count].T) row by row and out[bo:] = d's row sums: a layer's weight and
    bias gradients over a block of pixels."""
    dout, din = d.shape[0], x.shape[0]
    for o in range(dout):
        do = d[o]
        s = np.float32(0.0)
        for q in range(count):
            s += do[q]
        out[bo + o] = s
        j = 0
        while j + 4 <= din:
            x0, x1, x2, x3 = x[j], x[j + 1], x[j + 2], x[j + 3]
            s0 = s1 = s2 = s3 = np.float32(0.0)
            for q in range(count):
                v = do[q]
                s0 += v * x0[q]
                s1 += v * x1[q]
                s2 += v * x2[q]
                s3 += v * x3[q]
            out[wo + o * din + j], out[wo + o * din + j + 1] = s0, s1
            out[wo + o * din + j + 2], out[wo + o * din + j + 3] = s2, s3
            j += 4
        for j in range(j, din):
            xj = x[j]
            s = np.float32(0.0)
            for q in range(count):
                s += do[q] * xj[q]
            out[wo + o * din + j] = s


@numba.njit(cache=True, parallel=True, fastmath=True)
def _synthesis(used, index, width, plane_start, plane_cols, plane_level, plane_direct, col_at, col_w, row_at, row_w,
               target, params, params_t, dims, w_off, b_off, grad_scale, block, grad_parts, loss_parts, dfeat):
    """The MLP (ReLU hidden layers, dims[0] -> ... -> dims[-1]) on the samples at pixels `index` of the
    grids in `used`, its squared error against `target` (channels, pixels) and the backward pass, over
    blocks of `block` pixels: loss_parts[k] is block k's sum of squared errors, grad_parts[k] its
    gradient of grad_scale x that sum in every parameter (laid out as `params`; `params_t` holds each
    weight transposed at the same offsets), and dfeat (features, batch) the gradient in each sample."""
    n = index.shape[0]
    layers = dims.shape[0] - 1
    widest = 0
    for i in range(dims.shape[0]):
        widest = max(widest, dims[i])
    zeros = np.zeros(widest, np.float32)
    for k in numba.prange((n + block - 1) // block):
        p0 = k * block
        count = min(block, n - p0)
        act = np.empty((layers + 1, widest, block), np.float32)
        rows = np.empty(block, np.int64)
        columns = np.empty(block, np.int64)
        for q in range(count):
            rows[q] = index[p0 + q] // width
            columns[q] = index[p0 + q] - rows[q] * width
        for f in range(dims[0]):
            level = plane_level[f]
            _plane_samples(used, plane_start[f], plane_cols[f], plane_direct[f], col_at[level], col_w[level],
                           row_at[level], row_w[level], rows, columns, count, act[0, f])
        for i in range(layers):
            w = params[w_off[i]:w_off[i] + dims[i + 1] * dims[i]].reshape(dims[i + 1], dims[i])
            _dense(act[i], act[i + 1], w, params[b_off[i]:b_off[i] + dims[i + 1]], count, i < layers - 1)
        d = np.empty((widest, block), np.float32)
        nd = np.empty((widest, block), np.float32)
        total = 0.0
        last = act[layers]
        for o in range(dims[layers]):
            for q in range(count):
                e = last[o, q] - target[o, index[p0 + q]]
                total += e * e
                d[o, q] = e * grad_scale
        loss_parts[k] = total
        for i in range(layers - 1, -1, -1):
            _outer_sums(d[:dims[i + 1]], act[i][:dims[i]], count, grad_parts[k], w_off[i], b_off[i])
            wt = params_t[w_off[i]:w_off[i] + dims[i + 1] * dims[i]].reshape(dims[i], dims[i + 1])
            _dense(d[:dims[i + 1]], nd, wt, zeros, count, False)
            if i > 0:  # through the ReLU: zero where its output was
                x = act[i]
                for j in range(dims[i]):
                    for q in range(count):
                        if x[j, q] <= 0.0:
                            nd[j, q] = 0.0
            d, nd = nd, d
        for f in range(dims[0]):
            for q in range(count):
                dfeat[f, p0 + q] = d[f, q]


@numba.njit(cache=True, parallel=True)
def _scatter(dfeat, index, width, plane_start, plane_size, plane_cols, plane_level, plane_direct, col_at, col_w,
             row_at, row_w, grad):
    """grad (laid out as the flat latents) = the gradient in every latent of the samples whose gradient
    is dfeat: each plane on its own, its pixels added in batch order (so repeatable whatever the threads)."""
    for f in numba.prange(plane_start.shape[0]):
        start, level = plane_start[f], plane_level[f]
        grad[start:start + plane_size[f]] = 0.0
        _plane_scatter(grad, start, plane_cols[f], plane_direct[f], col_at[level], col_w[level], row_at[level],
                       row_w[level], index, width, dfeat[f])


PIXEL_BLOCK = 256  #: pixels per block of the MLP pass (its activations stay in the core's cache)


class FusedDistortion:
    """The distortion half of a CPU step (the samples of the grids at a batch of pixels, the synthesis
    MLP, its mean squared error and its gradients) in two numba passes; the same arithmetic as
    codec.encoding.latent_step's batch_features and SynthesisMse (tests/test_latent_cpu.py compares them).

    Args:
        state: the flat latents' layout (levels finest first, each (channels, rows, columns)).
        width, height: the image's size.
        sampling: the grids' sampling (bitstream.BILINEAR or BICUBIC).
        target: (pixels, channels) float32 values of the image, row by row.
    """

    def __init__(self, state: LatentState, width: int, height: int, sampling: int, target: torch.Tensor):
        self.width = width
        self.target = np.ascontiguousarray(target.detach().numpy().T, dtype=np.float32)
        col, row = [], []
        starts, sizes, cols, level_of, direct = [], [], [], [], []
        for level, ((channels, rows, columns), offset) in enumerate(zip(state.shapes, state.offsets)):
            ca, cw = axis_taps(width, columns, np.dtype(np.float32), sampling)
            ra, rw = axis_taps(height, rows, np.dtype(np.float32), sampling)
            col.append((ca, cw))
            row.append((ra, rw))
            identity = (rows, columns) == (height, width) and bool(
                np.all(ca[0] == np.arange(width)) and np.all(cw[0] == 1) and np.all(ra[0] == np.arange(height))
                and np.all(rw[0] == 1))
            for ch in range(channels):
                starts.append(offset + ch * rows * columns)
                sizes.append(rows * columns)
                cols.append(columns)
                level_of.append(level)
                direct.append(identity)
        self.col_at = np.ascontiguousarray(np.stack([a for a, _ in col]), dtype=np.int64)
        self.col_w = np.ascontiguousarray(np.stack([w for _, w in col]), dtype=np.float32)
        self.row_at = np.ascontiguousarray(np.stack([a for a, _ in row]), dtype=np.int64)
        self.row_w = np.ascontiguousarray(np.stack([w for _, w in row]), dtype=np.float32)
        self.planes = tuple(np.asarray(v, dtype=np.int64) for v in (starts, sizes, cols, level_of)) + (
            np.asarray(direct, dtype=np.bool_),)
        self.grad = np.zeros(state.flat.shape[0], dtype=np.float32)

    def step(self, used: np.ndarray, index: np.ndarray, weights: list[torch.Tensor]):
        """(mean squared error, its gradient in every weight (the same order), its gradient in every latent
        (the flat layout; a view kept by this object)) of the MLP with `weights` ((weight, bias) per layer,
        file order) on the samples of `used` (the flat latents as this step uses them) at the image's
        pixels `index` (row by row)."""
        start, size, cols, level, direct = self.planes
        arrays = [w.detach().numpy() for w in weights]
        dims = np.asarray([arrays[0].shape[1]] + [w.shape[0] for w in arrays[0::2]], dtype=np.int64)
        sizes = [a.size for a in arrays]
        offsets = np.cumsum([0] + sizes)
        params = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float32, copy=False)
        params_t = np.concatenate([a.T.reshape(-1) for a in arrays]).astype(np.float32, copy=False)
        n = index.shape[0]
        count = n * self.target.shape[0]
        n_blocks = -(-n // PIXEL_BLOCK)
        parts = np.empty((n_blocks, params.shape[0]), np.float32)
        losses = np.empty(n_blocks)
        dfeat = np.empty((int(dims[0]), n), np.float32)
        numba.set_num_threads(threads())
        _synthesis(used, index, self.width, start, cols, level, direct, self.col_at, self.col_w, self.row_at, self.row_w,
                   self.target, params, params_t, dims, offsets[0:-1:2].astype(np.int64),
                   offsets[1::2].astype(np.int64), np.float32(2.0 / count), PIXEL_BLOCK, parts, losses, dfeat)
        _scatter(dfeat, index, self.width, start, size, cols, level, direct, self.col_at, self.col_w, self.row_at,
                 self.row_w, self.grad)
        total = parts.sum(axis=0)
        grads = [torch.from_numpy(total[o:o + s].reshape(a.shape)) for o, s, a in zip(offsets, sizes, arrays)]
        return float(losses.sum()) / count, grads, self.grad


def warm_up() -> float:
    """Run both passes once on a tiny model so numba compiles them (or loads them from its cache) now, not
    inside a timed fit; the global torch random state is left as it was. Returns the seconds it took."""
    import time

    from ..families.latent.model import LatentGridInr
    from bitstream import BILINEAR, LatentGrid

    t0 = time.monotonic()
    with torch.random.fork_rng():
        model = LatentGridInr(channels=3, hidden_width=4, hidden_layers=1, grid=LatentGrid(8, 8, 2, 1, BILINEAR))
    state = LatentState(model, 16)
    target = torch.zeros(64, 3)
    fused = FusedLatents(state, seed=0)
    distortion = FusedDistortion(state, 8, 8, BILINEAR, target)
    weights = model.parameters_in_file_order()[2:]
    for mode in (NOISE, ROUND):
        fused.begin(mode)
        _, _, grad = distortion.step(fused.used, np.arange(64, dtype=np.int64), weights)
        for want_bits in (True, False):
            fused.step(grad, np.zeros(2 * 16, np.float32), 0.1, 0.01, want_bits=want_bits)
    return time.monotonic() - t0
