"""The adapter interface shared by all codecs."""
from __future__ import annotations

from PIL import Image


class Codec:
    """Base adapter: subclasses set the class attributes and implement encode/decode."""

    name: str = ""
    description: str = ""
    setting_name: str = "quality"
    default_settings: tuple = ()
    device: str = "cpu"

    def unavailable(self) -> str | None:
        """A one-line reason this codec cannot run here, or None if it can."""
        return None

    def encode(self, img: Image.Image, setting) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, data: bytes) -> Image.Image:  # pragma: no cover - interface
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """Versions and fixed options that determine the output bytes."""
        return {}

    def config(self) -> dict:
        """Fixed encoder options, recorded in the results' ``meta.settings``."""
        return {}
