"""The encoder's and decoder's side of the architecture registry (`bitstream.architectures`):
which torch module each family id is built from.

Adding a family: its id in `bitstream.architectures`, its module here, its numpy evaluator in
`codec.numpy_nets` (and, if it is not fitted like a SIREN, its encoder, as `codec.latent_encoder`).
"""
from __future__ import annotations

import torch
from torch import nn

from bitstream import ARCHITECTURES, LATENT, POLY, SIREN, LatentGrid

from .latentgrid import LatentGridInr
from .polyinr import PolyInr
from .siren import Siren

MODULES: dict[int, type[nn.Module]] = {SIREN: Siren, POLY: PolyInr, LATENT: LatentGridInr}
assert set(MODULES) == set(ARCHITECTURES), "every family of the format needs a torch module"

#: layers wider than this get a proportionally smaller fitting learning rate (lr_scaling "width")
LR_REFERENCE_WIDTH = 96


def build_network(arch: int, *, channels: int, hidden_width: int, hidden_layers: int, omega0: float,
                  grid: LatentGrid | None = None) -> nn.Module:
    """A freshly initialised network of family `arch` (uses the global torch seed); `grid` for a
    family with latent grids."""
    extra = {"grid": grid} if ARCHITECTURES[arch].has_grid else {}
    return MODULES[arch](channels=channels, hidden_width=hidden_width, hidden_layers=hidden_layers, omega0=omega0, **extra)


def lr_scales(model: nn.Module, mode: str) -> tuple[float, ...]:
    """Per-tensor learning-rate multipliers in file order (a bias takes its weight's).

    "none": 1 everywhere. "width": a weight whose fan-in is wider than LR_REFERENCE_WIDTH gets
    LR_REFERENCE_WIDTH / fan_in. Adam moves every weight by about the learning rate per step, whatever
    its scale, and a layer sums fan_in such moves: the change of its pre-activation per step grows
    with the width (times omega0 in a sine layer). Past a width, the first steps throw a SIREN into a
    state that never learns (measured on Kodak 768x512, 8 layers, with warm-up: width 320 stays at a
    flat image's PSNR at lr 1e-3 and learns at 5e-4; width 160 learns at 2e-3). Layers fed by the 2
    coordinates keep the full rate.
    """
    params = model.parameters_in_file_order()
    if mode == "none":
        return (1.0,) * len(params)
    scales, scale = [], 1.0
    for p in params:
        if p.dim() == 2:
            scale = min(1.0, LR_REFERENCE_WIDTH / p.shape[1])
        scales.append(scale)
    return tuple(scales)


def load_weights(model: nn.Module, weights) -> nn.Module:
    """Copy numpy tensors (file order) into `model`; returns it."""
    with torch.no_grad():
        for param, value in zip(model.parameters_in_file_order(), weights):
            param.copy_(torch.from_numpy(value))
    return model
