"""The codec's side of the family registry: for each architecture id of the format
(`bitstream.architectures`), where its network is defined and which encoder fits it.

A family lives in its own folder, ``codec/families/<name>/``: ``model.py`` (the torch module, exported
as ``MODEL``) and ``numpy.py`` (``evaluate(header, weights, coords, *, order)`` for torch-free receivers,
and optionally ``render_rows`` where whole pixel rows render faster). Its encoder is a module of
``codec.encoding`` with ``encode(pixels, cfg)``. Modules are imported on demand, so a decoder never imports
torch or the fitting code through this registry.

Adding a family: its format entry in ``bitstream/architectures.py`` (id, stored tensors, first format
version), its folder here, its encoder, an entry in FAMILIES, FORMAT.md and the spec reader in tests/.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

from bitstream import ARCHITECTURES, LATENT, POLY, SIREN, InrFormatError, LatentGrid, architectures

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Family:
    """One network family: its format id, its folder, its encoder and its fitting learning rate."""

    arch_id: int
    folder: str  #: the package under codec.families
    encoder: str  #: the module under codec.encoding whose encode(pixels, cfg) fits it
    fit_lr: float  #: the fit's default learning rate (EncoderConfig.lr overrides it)

    @property
    def name(self) -> str:
        return architectures.NAMES[self.arch_id]

    def model_class(self) -> "type[nn.Module]":
        """The torch module (imports torch)."""
        return import_module(f"{__package__}.{self.folder}.model").MODEL

    def numpy(self) -> ModuleType:
        """The numpy evaluator module (numpy only)."""
        return import_module(f"{__package__}.{self.folder}.numpy")

    def encode_module(self) -> ModuleType:
        """The encoder (imports torch and the fitting code)."""
        return import_module(f"codec.encoding.{self.encoder}")


#: The learning rates: SIREN from the ablation of the SIREN's lr, Poly-INR from its lr probe, latent grids
#: the latents' rate (the synthesis MLP gets a share of it); benchmarks/DECISIONS.md has the measurements.
FAMILIES: dict[int, Family] = {
    SIREN: Family(SIREN, "siren", "mlp", fit_lr=2e-3),
    POLY: Family(POLY, "poly", "mlp", fit_lr=1e-2),
    LATENT: Family(LATENT, "latent", "latent", fit_lr=5e-2),
}
assert set(FAMILIES) == set(ARCHITECTURES), "every family of the format needs an entry here"


def family(arch_id: int) -> Family:
    """The family of an architecture id (InrFormatError for an id this codec does not know)."""
    try:
        return FAMILIES[arch_id]
    except KeyError:
        raise InrFormatError(f"architecture {arch_id} is not a family this codec knows") from None


def build_network(arch: int, *, channels: int, hidden_width: int, hidden_layers: int, omega0: float,
                  grid: LatentGrid | None = None) -> "nn.Module":
    """A freshly initialised network of family `arch` (uses the global torch seed); `grid` for a
    family with latent grids."""
    extra = {"grid": grid} if ARCHITECTURES[arch].has_grid else {}
    return family(arch).model_class()(channels=channels, hidden_width=hidden_width, hidden_layers=hidden_layers,
                                      omega0=omega0, **extra)


def load_weights(model: "nn.Module", weights) -> "nn.Module":
    """Copy numpy tensors (file order) into `model`; returns it."""
    import torch

    with torch.no_grad():
        for param, value in zip(model.parameters_in_file_order(), weights):
            param.copy_(torch.from_numpy(value))
    return model
