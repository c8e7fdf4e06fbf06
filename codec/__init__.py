"""The `.inr` neural image codec: an image stored as a small neural network fitted to it (by default
multi-resolution latent grids and a small synthesis MLP), quantized and entropy-coded.

    from codec import encode, decode
    data = encode("photo.png", bpp=0.5)      # bytes
    image = decode(data, res=2048)          # PIL image, any size
    PIL.Image.open("photo.inr")             # also through Pillow, once codec is imported
"""
from bitstream import InrFormatError

from .api import decode, decode_from, encode, encode_to, encode_with_stats
from .config import PRESETS, EncoderConfig, LatentSettings, MlpSettings
from .decoding import DecodeLimits, DecodeWorkError
from .errors import ImageInputError, OptionError
from . import pillow_plugin  # noqa: F401,E402 - registers .inr with Pillow (Image.open / Image.save)

__all__ = [
    "PRESETS", "DecodeLimits", "DecodeWorkError", "EncodeResult", "EncoderConfig", "ImageInputError", "InrFormatError",
    "LatentSettings", "MlpSettings", "OptionError",
    "decode", "decode_from", "encode", "encode_to", "encode_with_stats",
]


def __getattr__(name: str):
    if name == "EncodeResult":  # lazily: importing the decoder must not import the fitting code
        from .encoding.common import EncodeResult

        return EncodeResult
    raise AttributeError(f"module 'codec' has no attribute {name!r}")
