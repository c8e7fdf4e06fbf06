"""Codec adapters: one small class per codec, collected in :data:`REGISTRY`.

Every adapter has ``name`` (registry key and results file name), ``description``,
``setting_name`` and ``default_settings`` (its operating points), ``device``, and

* ``unavailable() -> str | None`` — why it cannot run here (a missing plugin), or None;
* ``encode(img: PIL.Image.Image, setting) -> bytes`` — the complete file;
* ``decode(data: bytes) -> PIL.Image.Image``;
* ``fingerprint() -> dict`` — library versions and settings that change its
  output; part of the cache key, so a new library version is re-measured.
"""
from __future__ import annotations

from .base import Codec
from .inr import InrCodec
from .pillow_codecs import AVIF, HEIC, JPEG420, JPEG444, JPEG2000, JPEGXL, WebP

#: registry key -> adapter class, in the order codecs are run and listed
REGISTRY: dict[str, type[Codec]] = {
    cls.name: cls for cls in (InrCodec, JPEG420, JPEG444, WebP, AVIF, JPEG2000, HEIC, JPEGXL)
}

#: the anchor of the BD-rate table
ANCHOR = JPEG420.name

__all__ = ["ANCHOR", "REGISTRY", "Codec", "InrCodec"]
