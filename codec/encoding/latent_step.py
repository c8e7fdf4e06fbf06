"""The latent-grid family's fitting step, built for speed (codec.encoding.latent.fit runs it).

One step is: the latents plus uniform noise (or rounded, straight-through), their samples at a batch of
pixels, the synthesis MLP and its MSE, the estimated bits of every latent under its neighbour-context
Laplace, and one Adam update. The arithmetic is the same as evaluating `LatentGridInr` with autograd;
what makes it fast (benchmarks/step_speed.py measures it against the plain version, DECISIONS.md says
what did and did not pay):

- every grid lives in one flat tensor (`LatentState`): one noise draw, one rounding, one rate term
  and one Adam tensor for all levels instead of one per level;
- the rate term (`LatentRate`) is the Laplace's bin probability in closed form, with its gradient
  written out: for |x| >= 1/2 the code length is linear in |x| (|x| / (b ln 2) - log2 sinh(1 / 2b)),
  below it -log2(1 - e^(-1/2b) cosh(x / b)); per-class constants are gathered once per step and the
  scales' gradients summed per class with one bincount (a serial pass in a fixed order, so repeatable);
- the synthesis MLP and its MSE (`SynthesisMse`) run channels-first, (features, pixels), with the
  backward pass written out (the ReLU masks reused, no autograd graph over the batch).
"""
from __future__ import annotations

import math

import torch
from ..families.latent.model import LatentGridInr, sample_grid
from .latent_rounding import context_classes

LN2 = math.log(2.0)
MIN_SCALE = 1e-3  #: the Laplace's scale is at least this
MIN_PROBABILITY = 1e-9  #: a bin's probability is at least this: no code is longer than
MAX_BITS = -math.log2(MIN_PROBABILITY)  #: ... this many bits, and there the rate's gradient is zero


class LatentState:
    """The model's grids as one flat tensor (finest level first, as in the file), with per-level views.

    Args:
        model: the latent-grid model whose grids are copied in (and written back by `store`).
        n_classes: context classes per level.
    """

    def __init__(self, model: LatentGridInr, n_classes: int):
        self.shapes = [tuple(g.shape) for g in model.latents]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.n_classes = n_classes
        self.flat = torch.cat([g.detach().reshape(-1) for g in model.latents]).requires_grad_(True)
        #: each latent's level x n_classes, added to its class within the level
        self.class_offset = torch.cat([torch.full((size,), level * n_classes, dtype=torch.long, device=self.flat.device)
                                       for level, size in enumerate(self.sizes)])

    def levels(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """`flat` (a tensor laid out as self.flat) as one (channels, rows, columns) view per level."""
        return [flat[o:o + s].view(shape) for o, s, shape in zip(self.offsets, self.sizes, self.shapes)]

    def classes(self, values: torch.Tensor) -> torch.Tensor:
        """The global context class (level x n_classes + its class in the level) of every latent, from
        `values` rounded (codec.encoding.latent_rounding.context_classes of each grid; no gradient)."""
        with torch.no_grad():
            local = [context_classes(v, self.n_classes).reshape(-1) for v in self.levels(values)]
            return torch.cat(local).add_(self.class_offset)

    def store(self, model: LatentGridInr) -> None:
        """Write the flat latents back into the model's grids."""
        with torch.no_grad():
            for g, v in zip(model.latents, self.levels(self.flat.detach())):
                g.copy_(v)


ONE_HOT_CHUNK = 1 << 18  #: latents per one-hot product of class_sums on a GPU (bounds its memory)


def class_sums(classes: torch.Tensor, values: torch.Tensor, n: int, *, one_hot: bool | None = None) -> torch.Tensor:
    """(n,) sums of `values` per class, repeatable: on the CPU one bincount (a serial pass in a fixed
    order), on a GPU one-hot products over chunks of ONE_HOT_CHUNK latents, added in order (a GPU's
    bincount adds atomically onto a few addresses, slowly and in no fixed order). `one_hot` forces either."""
    if not (classes.device.type != "cpu" if one_hot is None else one_hot):
        return torch.bincount(classes, weights=values, minlength=n).to(values.dtype)
    ids = torch.arange(n, device=classes.device)
    total = values.new_zeros(n)
    for start in range(0, classes.numel(), ONE_HOT_CHUNK):
        chunk = classes[start:start + ONE_HOT_CHUNK]
        total += (chunk.unsqueeze(-1) == ids).to(values.dtype).T @ values[start:start + ONE_HOT_CHUNK]
    return total


class LatentRate(torch.autograd.Function):
    """Total bits of the (noisy) latents `values` under a zero-mean Laplace per context class
    (scale b = exp(log_scales[class]) at least MIN_SCALE, bins of width 1, at most MAX_BITS a latent):
    the sum of -log2(CDF(x + 1/2) - CDF(x - 1/2)), in closed form, with its gradients in `values` and in
    `log_scales` (flat, one per global class) computed in the same pass.

    With a = |x|, h = 1 / 2b, a' = min(a, 1/2), t = a' / b and p = 1 - (e^(t - h) + e^(-t - h)) / 2
    (the probability of the bin of a', without overflow): bits = -log2 p + max(a - 1/2, 0) / (b ln 2),
    which is the bin's -log2 probability for every a (past 1/2 the code length grows linearly)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, log_scales: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        b = torch.exp(log_scales).clamp_min(MIN_SCALE)
        inv_b_c = torch.index_select(1.0 / b, 0, classes)
        a = values.abs()
        excess = (a - 0.5).clamp_(min=0)  # max(a - 1/2, 0)
        t = (a - excess).mul_(inv_b_c)  # min(a, 1/2) / b
        h_c = inv_b_c * 0.5
        e1 = torch.exp(t - h_c)
        e2 = torch.exp(-(t + h_c))
        p = 1.0 - 0.5 * (e1 + e2)
        linear = excess.mul_(inv_b_c).mul_(1.0 / LN2)
        bits = (-torch.log2(p.clamp_min(MIN_PROBABILITY))).add_(linear)
        if not any(ctx.needs_input_grad[:2]):  # a value only (the rate controller's estimate)
            return bits.clamp_max_(MAX_BITS).sum()
        live = ((bits < MAX_BITS) & (p > MIN_PROBABILITY)).to(values.dtype)  # below both caps: a gradient
        scale = live / p.clamp_min_(MIN_PROBABILITY).mul_(LN2)  # 1 / (p ln 2) where live, else 0
        near = (a < 0.5).to(values.dtype)
        # d bits / d a, and d bits / d log b
        d_a = ((e1 - e2).mul_(0.5).mul_(scale).mul_(near).addcmul_(near.neg_().add_(1), live, value=1.0 / LN2)).mul_(inv_b_c)
        d_log_b = ((t - h_c).mul_(e1).sub_((t + h_c).mul_(e2))).mul_(-0.5).mul_(scale).sub_(linear.mul_(live))
        ctx.d_values = d_a.mul_(torch.sign(values))
        per_class = class_sums(classes, d_log_b, log_scales.numel())
        ctx.d_log_scales = per_class * (b > MIN_SCALE).to(per_class.dtype)
        return bits.clamp_max_(MAX_BITS).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.d_values, grad * ctx.d_log_scales, None


class SynthesisMse(torch.autograd.Function):
    """Mean squared error of the synthesis MLP (ReLU hidden layers) on channels-first features
    (features, pixels) against targets (channels, pixels), with the backward pass written out.
    `weights` are (weight, bias) per layer, in file order (LatentGridInr.synthesis's `weights`)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, target: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        hidden = []
        h = features
        last = len(weights) // 2 - 1
        for i in range(last + 1):
            w, bias = weights[2 * i], weights[2 * i + 1]
            h = torch.addmm(bias[:, None], w, h)
            if i < last:
                h = h.clamp_(min=0)
                hidden.append(h)
        residual = h.sub_(target)
        ctx.save_for_backward(features, residual, *hidden, *weights)
        ctx.n_hidden = len(hidden)
        return torch.mean(residual * residual)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        saved = ctx.saved_tensors
        features, residual = saved[0], saved[1]
        hidden = list(saved[2:2 + ctx.n_hidden])
        weights = saved[2 + ctx.n_hidden:]
        d = residual * (grad * 2.0 / residual.numel())
        inputs = [features] + hidden
        grads = [None] * len(weights)
        for i in reversed(range(len(weights) // 2)):
            x = inputs[i]
            grads[2 * i] = d @ x.T
            grads[2 * i + 1] = d.sum(dim=1)
            if i > 0 or ctx.needs_input_grad[0]:
                d = weights[2 * i].T @ d
                if i > 0:  # through the ReLU: zero where its output was
                    d = torch.ops.aten.threshold_backward(d, x, 0.0)
        return (d if ctx.needs_input_grad[0] else None), None, *grads


def pixel_axes(coords: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x of each column, y of each row) of an image's pixel centres `coords` (row by row, `width` wide)."""
    return coords[:width, 0].contiguous(), coords[::width, 1].contiguous()


def batch_features(model: LatentGridInr, levels: list[torch.Tensor], axes: tuple[torch.Tensor, torch.Tensor],
                   index: torch.Tensor) -> torch.Tensor:
    """(levels x channels, pixels) samples of the grids `levels` at the image's pixels `index` (row by
    row; `axes` from pixel_axes): `LatentGridInr.pixel_features`, channels-first. The finest grid, one
    cell per pixel, is read directly; the others are sampled (grid_sample)."""
    finest = levels[0]
    columns = [torch.index_select(finest.reshape(finest.shape[0], -1), 1, index)]
    xs, ys = axes
    width = xs.shape[0]
    where = torch.stack([torch.index_select(xs, 0, index % width), torch.index_select(ys, 0, index // width)], dim=1)
    sampling = model.grid.sampling
    return torch.cat(columns + [sample_grid(g, where, sampling).T for g in levels[1:]], dim=0)


def image_features(model: LatentGridInr, levels: list[torch.Tensor], matrices) -> torch.Tensor:
    """(levels x channels, pixels) samples of `levels` at every pixel of the image
    (`LatentGridInr.image_features`, channels-first)."""
    return model.image_features(matrices, levels).T


def mse_of(features: torch.Tensor, target: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """The synthesis MLP's MSE on channels-first `features` against channels-first `target`."""
    return SynthesisMse.apply(features, target, *weights)


def rate_bits(state: LatentState, values: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Total estimated bits of `values` (laid out as state.flat) under the per-class Laplaces
    (`log_scales`: (levels, n_classes)), the classes from `values` rounded."""
    return LatentRate.apply(values, log_scales.reshape(-1), state.classes(values))

