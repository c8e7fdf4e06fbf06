"""bytes -> image at any size: the decoder (`decoder.py`) and its two renderers, torch (`render.py`) and
numpy (`numpy_render.py`). Imports the format, the families' definitions and rendering, never the
fitting code (codec.encoding)."""
from .decoder import (
    BACKENDS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_WORK, RENDERS, DecodeLimits, DecodeWorkError, ImageTooLargeError,
    array_to_image, check_work, decode_array, decode_image, multiply_adds_per_pixel, read_checked,
)

__all__ = ["BACKENDS", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_WORK", "RENDERS", "DecodeLimits", "DecodeWorkError",
           "ImageTooLargeError", "array_to_image", "check_work", "decode_array", "decode_image", "multiply_adds_per_pixel",
           "read_checked"]
