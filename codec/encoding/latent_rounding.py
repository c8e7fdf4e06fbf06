"""Rate-distortion optimised rounding of a fitted latent-grid model's latents (encoder side only).

Rounding every latent to its nearest integer is what the fit's last phase trains for, but it is not
the cheapest file of its quality: a latent rounded away from zero costs bits that the picture may not
need, and one rounded the other way may give a better picture. As the RDOQ of video encoders does,
`rd_round` tries moving rounded latents one step (towards zero, or down and up) and keeps each move that
lowers MSE + lambda x bits, with lambda the fit's own trade-off:

- the distortion change is measured exactly on the whole image, for many latents at once: a latent
  of a coarse grid changes only the pixels whose interpolation taps read it, so the latents of one
  grid whose row and column indices are equal modulo the tap span (2 cells bilinear, 4 bicubic;
  1 where the grid has a cell per pixel) change disjoint sets of pixels, and one evaluation of the
  image gives each of them its own change;
- the rate change is the latent's code length under its neighbour-context class (the classes of
  bitstream's NEIGHBOUR_CONTEXT), from each class's histogram of the rounded grid; the effect of a
  move on its neighbours' classes and predictions is left out, and the caller keeps the moved
  latents only when the real file's MSE + lambda x rate is lower.

Nothing here changes the format: the file stores integers as before, just other ones.
"""
from __future__ import annotations

import numpy as np
import torch

import bitstream

from ..families.latent.model import LatentGridInr, separable_samples
from ..families.latent.numpy import axis_taps
from .quantization import fake_quantize


def tap_span(n_out: int, cells: int, sampling: int) -> int:
    """Cells apart that two latents of one grid axis must be for no pixel centre to read both."""
    if cells == n_out:
        return 1  # a cell per pixel: each centre reads its own cell only (weight 1, the others 0)
    return 2 if sampling == bitstream.BILINEAR else 4


def axis_owners(n_out: int, cells: int, sampling: int, span: int, phase: int) -> np.ndarray:
    """For each of the n_out pixel centres along an axis, the one cell with index % span == phase that
    its sampling reads with a nonzero weight, or -1. Span 1 (a cell per pixel): the cell of the largest
    weight (the neighbours' weights are float rounding, below 1e-15)."""
    indices, weights = axis_taps(n_out, cells, np.dtype(np.float64), sampling)
    if span == 1:
        return indices[np.argmax(weights, axis=0), np.arange(n_out)]
    owners = np.full(n_out, -1, dtype=np.int64)
    for index, weight in zip(indices, weights):
        hit = (index % span == phase) & (weight != 0)
        owners[hit] = index[hit]
    return owners


def context_classes(grid: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The neighbour-context class of every latent of a (channels, rows, columns) grid, from its rounded
    values, exactly as the coder computes it (bitstream.entropy.neighbour_classes: min(2|left| + 2|above| +
    |above-left|, n_classes - 1), zeros outside the grid; no gradient)."""
    with torch.no_grad():
        mags = torch.round(grid).abs_()
        local = torch.zeros_like(mags)
        local[:, :, 1:].add_(mags[:, :, :-1], alpha=2)
        local[:, 1:, :].add_(mags[:, :-1, :], alpha=2)
        local[:, 1:, 1:].add_(mags[:, :-1, :-1])
        return local.clamp_(max=n_classes - 1).long()


def class_code_lengths(symbols: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(classes of a (rows, columns) integer grid, bits table [class, value + offset], offset): each
    class's empirical code length of every value from -offset to offset, counts smoothed by 1/2."""
    classes = context_classes(symbols[None], n_classes)[0]
    offset = int(symbols.abs().max()) + 1
    width = 2 * offset + 1
    counts = torch.bincount((classes * width + symbols.long() + offset).reshape(-1),
                            minlength=n_classes * width).reshape(n_classes, width).double() + 0.5
    return classes, -torch.log2(counts / counts.sum(dim=1, keepdim=True)), offset


def _level_column(model: LatentGridInr, matrices, level: int, grid: torch.Tensor) -> torch.Tensor:
    """The (pixels, channels) features of one grid at every pixel centre of the model's image."""
    channels, rows, cols = grid.shape
    if rows == model.grid.height and cols == model.grid.width:
        return grid.reshape(channels, -1).T  # a cell per pixel: the samples are the cells
    return separable_samples(grid, *matrices[level])


MOVES = ("towards-zero", "either")  #: rd_round's choices: a nonzero latent one step towards zero, or any latent -1 or +1


def rd_round(model: LatentGridInr, target: torch.Tensor, lam: float, synth_steps: list[float], *,
             n_classes: int, moves: str = "towards-zero") -> tuple[list[torch.Tensor], int]:
    """(rounded latents after the moves, number of latents moved): one pass over every grid, finest first,
    moving latents one step (towards zero, or either way: `moves`) where MSE + lam x bits per pixel falls
    (see the module's doc). `target` holds the image's values at its pixel centres, row by row, as the fit
    saw them; the MLP is evaluated quantized at `synth_steps` (file order), as the decoder will."""
    if moves not in MOVES:
        raise ValueError(f"unknown moves {moves!r}: choose one of {', '.join(MOVES)}")
    grid_dims = model.grid
    height, width, sampling = grid_dims.height, grid_dims.width, grid_dims.sampling
    out_channels = target.shape[1]
    device = target.device
    mlp = model.parameters_in_file_order()[grid_dims.levels:]
    moved = 0
    with torch.no_grad():
        weights = [fake_quantize(p, s) for p, s in zip(mlp, synth_steps)]
        matrices = model.image_matrices(device)
        rounded = [torch.round(g.detach()) for g in model.latents]
        columns = [_level_column(model, matrices, l, q) for l, q in enumerate(rounded)]

        def pixel_errors(cols, pixels=None) -> torch.Tensor:  # squared error of each pixel (of `pixels`)
            want = target if pixels is None else target[pixels]
            return ((model.synthesis(torch.cat(cols, dim=1), weights) - want) ** 2).sum(dim=1)

        errors = pixel_errors(columns)
        for level, q in enumerate(rounded):
            channels, rows, cols = q.shape
            row_span, col_span = tap_span(height, rows, sampling), tap_span(width, cols, sampling)
            row_owners = [torch.from_numpy(axis_owners(height, rows, sampling, row_span, p)).to(device)
                          for p in range(row_span)]
            col_owners = [torch.from_numpy(axis_owners(width, cols, sampling, col_span, p)).to(device)
                          for p in range(col_span)]
            for channel in range(channels):
                for row_phase, row_owner in enumerate(row_owners):
                    for col_phase, col_owner in enumerate(col_owners):
                        plane = q[channel]
                        chosen = torch.zeros_like(plane, dtype=torch.bool)
                        chosen[row_phase::row_span, col_phase::col_span] = True
                        if moves == "towards-zero":
                            steps = [(-torch.sign(plane), chosen & (plane != 0))]
                        else:
                            steps = [(-1.0, chosen), (1.0, chosen)]
                        # only this phase's latents move in a trial (the others' pixels overlap theirs)
                        options = [(torch.where(c, plane + d, plane), c) for d, c in steps]
                        if not any(bool(c.any()) for _, c in options):
                            continue
                        owner = (row_owner[:, None] * cols + col_owner[None, :]).reshape(-1)
                        owned = ((row_owner[:, None] >= 0) & (col_owner[None, :] >= 0)).reshape(-1)
                        classes, bits, offset = class_code_lengths(plane, n_classes)
                        best = torch.zeros_like(plane, dtype=torch.float64)  # staying put costs nothing
                        choice = torch.full_like(plane, -1, dtype=torch.long)
                        trials = []
                        for k, (moved_plane, candidates) in enumerate(options):
                            trial = q.clone()
                            trial[channel] = moved_plane
                            trial_columns = list(columns)
                            trial_columns[level] = _level_column(model, matrices, level, trial)
                            # only the pixels a candidate owns can change
                            pixels = torch.nonzero(owned & candidates.reshape(-1)[owner.clamp_min(0)]).reshape(-1)
                            trial_errors = pixel_errors([c[pixels] for c in trial_columns], pixels)
                            trials.append((pixels, trial_errors))
                            d_error = torch.bincount(owner[pixels], weights=(trial_errors - errors[pixels]).double(),
                                                     minlength=rows * cols).reshape(rows, cols)
                            # |moved| <= max |q| + 1 = offset: inside the table (its unseen values cost their 1/2 count)
                            d_bits = bits[classes, moved_plane.long() + offset] - bits[classes, plane.long() + offset]
                            cost = d_error / out_channels + lam * d_bits
                            better = candidates & (cost < best)
                            best = torch.where(better, cost, best)
                            choice = torch.where(better, k, choice)
                        if not bool((choice >= 0).any()):
                            continue
                        new_plane = plane.clone()
                        for k, ((moved_plane, _), (pixels, trial_errors)) in enumerate(zip(options, trials)):
                            new_plane = torch.where(choice == k, moved_plane, new_plane)
                            kept = choice.reshape(-1)[owner[pixels]] == k
                            errors[pixels[kept]] = trial_errors[kept]
                        q[channel] = new_plane
                        columns[level] = _level_column(model, matrices, level, q)
                        moved += int((choice >= 0).sum())
    return rounded, moved
