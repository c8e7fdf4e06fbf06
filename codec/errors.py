"""Errors the codec raises for user mistakes. All are ValueError subclasses.

`InrFormatError` (from `bitstream`) is raised for anything wrong with an `.inr` file;
`ImageInputError` for an image the encoder cannot or will not read;
`OptionError` for option values out of range (a zero size, an unknown preset, ...).
"""
from bitstream import InrFormatError


class ImageInputError(ValueError):
    """An input image is missing, unreadable, or of a kind the encoder refuses without an option."""


class OptionError(ValueError):
    """An option has a value out of range or conflicts with another option."""


__all__ = ["ImageInputError", "InrFormatError", "OptionError"]
