"""The adapter interface shared by all codecs.

Every adapter has ``name`` (registry key and results file name), ``description``,
``setting_name`` and ``default_settings`` (its operating points), ``device``, and

* ``unavailable() -> str | None`` — why it cannot run here (a missing plugin), or None;
* ``encode(img: PIL.Image.Image, setting) -> bytes`` — the complete file;
* ``decode(data: bytes) -> PIL.Image.Image``;
* ``fingerprint() -> dict`` — library versions and settings that change its
  output; part of the cache key, so a new library version is re-measured.
"""
from __future__ import annotations

from PIL import Image


class Codec:
    """Base adapter: subclasses set the class attributes and implement encode/decode."""

    name: str = ""
    description: str = ""
    setting_name: str = "quality"
    default_settings: tuple = ()
    device: str = "cpu"
    #: True if a target-bpp setting is a promised ceiling (a file above it is flagged as a warning)
    rate_is_ceiling: bool = False

    def unavailable(self) -> str | None:
        """A one-line reason this codec cannot run here, or None if it can."""
        return None

    def encode(self, img: Image.Image, setting) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, data: bytes) -> Image.Image:  # pragma: no cover - interface
        raise NotImplementedError

    def last_encode_info(self) -> dict | None:
        """What the encoder reported about its last call (e.g. steps run), if anything."""
        return None

    def fingerprint(self) -> dict:
        """Versions and fixed options that determine the output bytes."""
        return {}

    def config(self) -> dict:
        """Fixed encoder options, recorded in the results' ``meta.settings``."""
        return {}
