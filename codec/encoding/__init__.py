"""image -> `.inr` bytes: how each family's network is fitted, quantized and entropy-coded.

`encode_pixels` resolves the family ("auto": the latent grids where they fit, else the SIREN) and hands
the image to the family's encoder (codec.families.registry): `mlp` for the coordinate MLPs (SIREN,
Poly-INR), `latent` for the latent grids. What they share (serializer, budget search, flat fallback,
step planner) is in `common`; `fitting`, `quantization` and `pruning` are the building blocks of the
MLP fit; `stacked` fits several SIRENs as one batched network.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..config import AUTO_ARCH, EncoderConfig
from ..families.registry import family
from .common import EncodeResult

__all__ = ["EncodeResult", "encode_pixels", "resolve_family"]


def resolve_family(cfg: EncoderConfig, width: int, height: int, channels: int) -> EncoderConfig:
    """cfg with arch "auto" resolved for a width x height image: the latent-grid family, unless a
    SIREN-only setting is given (a fixed network size, --bits, sparsity, init "meta"), the image's latents
    would pass the decoders' default parameter limit (above about 3 megapixels) or its header and
    synthesis MLP would take most of the target size (small images at low rates,
    `codec.encoding.latent.latent_fits`); then the SIREN."""
    if cfg.arch != AUTO_ARCH:
        return cfg
    if cfg.siren_only:
        return replace(cfg, arch="siren")
    from .latent import latent_fits

    fits = latent_fits(width, height, channels, cfg.target_bpp, cfg.latent)
    return replace(cfg, arch="latent" if fits else "siren")


def encode_pixels(pixels: np.ndarray, config: EncoderConfig) -> EncodeResult:
    """Encode an (H, W, C) uint8 array, C in {1, 3}. See :func:`codec.encode` for the options."""
    height, width, channels = pixels.shape
    cfg = resolve_family(config.validated(), width, height, channels)
    return family(cfg.arch_id).encode_module().encode(pixels, cfg)
