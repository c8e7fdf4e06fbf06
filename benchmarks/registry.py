"""The codecs the benchmark knows, by name: the adapters of `baselines.py` and `inr.py`."""
from __future__ import annotations

from .base import Codec
from .inr import InrCodec, InrLatentBicubicCodec, InrLatentCodec
from .baselines import AVIF, HEIC, JPEG420, JPEG444, JPEG2000, JPEGXL, WebP

#: registry key -> adapter class, in the order codecs are run and listed
REGISTRY: dict[str, type[Codec]] = {
    cls.name: cls for cls in (InrCodec, InrLatentCodec, InrLatentBicubicCodec, JPEG420, JPEG444, WebP, AVIF, JPEG2000, HEIC, JPEGXL)
}

#: the anchor of the BD-rate table
ANCHOR = JPEG420.name

__all__ = ["ANCHOR", "REGISTRY", "Codec", "InrCodec"]
