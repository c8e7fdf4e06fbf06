"""Magnitude pruning of weight matrices (biases are kept)."""
from __future__ import annotations

import torch


def magnitude_masks(model: torch.nn.Module, sparsity: float) -> list[torch.Tensor]:
    """0/1 masks, one per parameter in file order, removing the `sparsity` fraction of smallest weights
    of every weight matrix. Bias masks are all ones."""
    masks = []
    for i, param in enumerate(model.parameters_in_file_order()):
        mask = torch.ones_like(param)
        n_prune = int(sparsity * param.numel())
        if i % 2 == 0 and n_prune > 0:
            threshold = param.detach().abs().reshape(-1).kthvalue(n_prune).values
            mask = (param.detach().abs() > threshold).to(param.dtype)
        masks.append(mask)
    return masks


def apply_masks(model: torch.nn.Module, masks: list[torch.Tensor]) -> None:
    """Zero the pruned weights in place."""
    with torch.no_grad():
        for param, mask in zip(model.parameters_in_file_order(), masks):
            param.mul_(mask)
