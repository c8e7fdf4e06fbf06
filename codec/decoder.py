"""bytes -> image at any size. Imports only the format, the model definition and rendering."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

import bitstream
from bitstream import Header
from bitstream.container import decode_payload, split_file

from .devices import resolve_device
from .errors import OptionError
from .render import render
from .siren import Siren

#: default limit on output pixels per decode, the same as Pillow's decompression-bomb limit
DEFAULT_MAX_PIXELS = 89_478_485
MAX_OUTPUT_SIDE = 65535


@dataclass(frozen=True)
class DecodeLimits:
    """What a decoder accepts: network size (from the file) and output pixels (from the request).

    Both are checked before anything proportional to them is allocated, so the memory and time
    a hostile file can cost are bounded by these two numbers.
    """

    max_parameters: int = bitstream.DEFAULT_MAX_PARAMETERS
    max_pixels: int = DEFAULT_MAX_PIXELS

    def validated(self) -> "DecodeLimits":
        for name in ("max_parameters", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"{name} must be a positive integer, got {value!r}")
        return self


class ImageTooLargeError(bitstream.InrFormatError, OptionError):
    """A file declares an image larger than the decoder's output-pixel limit.

    It is an InrFormatError (the file asks for more than this decoder accepts) and, for callers
    that handle the limit as an option problem, also an OptionError.
    """


def output_size(width: int, height: int, *, res=None, size=None, scale=None) -> tuple[int, int]:
    """Size (width, height) to render a width x height image at.

    Args:
        res: longer side in pixels, aspect ratio kept.
        size: exact (width, height).
        scale: factor applied to both sides.
    Raises:
        OptionError: more than one option given, or a value that is zero, negative or absurd.
    """
    given = [name for name, v in (("res", res), ("size", size), ("scale", scale)) if v is not None]
    if len(given) > 1:
        raise OptionError(f"give at most one of res, size, scale (got {', '.join(given)})")
    if res is not None:
        if isinstance(res, bool) or not isinstance(res, int) or not 1 <= res <= MAX_OUTPUT_SIDE:
            raise OptionError(f"res must be an integer from 1 to {MAX_OUTPUT_SIDE}, got {res!r}")
        factor = res / max(width, height)
        out = (max(1, round(width * factor)), max(1, round(height * factor)))
    elif size is not None:
        try:
            out = (int(size[0]), int(size[1]))
        except (TypeError, ValueError, IndexError):
            raise OptionError(f"size must be (width, height), got {size!r}") from None
        if not all(1 <= s <= MAX_OUTPUT_SIDE for s in out):
            raise OptionError(f"size sides must be from 1 to {MAX_OUTPUT_SIDE}, got {out[0]}x{out[1]}")
    elif scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
            raise OptionError(f"scale must be a positive number, got {scale!r}")
        if max(width, height) * scale > MAX_OUTPUT_SIDE + 0.5:
            raise OptionError(f"scale {scale} is too large for a {width}x{height} image: sides are limited to {MAX_OUTPUT_SIDE}")
        out = (max(1, round(width * scale)), max(1, round(height * scale)))
        if max(out) > MAX_OUTPUT_SIDE:
            raise OptionError(f"scale {scale} gives {out[0]}x{out[1]}, sides are limited to {MAX_OUTPUT_SIDE}")
    else:
        out = (width, height)
    return out


def build_model(header: Header, weights: list[np.ndarray], device: torch.device) -> Siren:
    """A SIREN with the header's dimensions holding exactly `weights` (file order)."""
    model = Siren(
        channels=header.channels,
        hidden_width=header.hidden_width,
        hidden_layers=header.hidden_layers,
        omega0=header.omega0,
    )
    with torch.no_grad():
        for param, value in zip(model.parameters_in_file_order(), weights):
            param.copy_(torch.from_numpy(value))
    return model.to(device).eval()


def decode_array(data: bytes, *, res=None, size=None, scale=None, device=None, limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
    """Decode `.inr` bytes to a (height, width, channels) uint8 array. See :func:`decode_image`."""
    limits = limits.validated()
    header, payload = split_file(data, max_parameters=limits.max_parameters)
    width, height = output_size(header.width, header.height, res=res, size=size, scale=scale)
    if res is None and size is None and scale is None and width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"file declares a {width}x{height} image = {width * height} pixels, more than the limit of "
            f"{limits.max_pixels}; decode it smaller (--res/--size/--scale) or raise --max-pixels"
        )
    if width * height > limits.max_pixels:
        raise OptionError(
            f"output of {width}x{height} = {width * height} pixels exceeds the limit of {limits.max_pixels}; "
            "raise it with --max-pixels"
        )
    symbols = decode_payload(header, payload)
    dev = resolve_device(device)
    model = build_model(header, bitstream.dequantize(header, symbols), dev)
    return render(model, height, width, hidden_width=header.hidden_width, device=dev)


def array_to_image(pixels: np.ndarray) -> Image.Image:
    """(H, W, 1) -> mode L, (H, W, 3) -> mode RGB."""
    if pixels.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]))
    return Image.fromarray(np.ascontiguousarray(pixels))


def decode_image(data: bytes, *, res=None, size=None, scale=None, device=None, limits: DecodeLimits = DecodeLimits()) -> Image.Image:
    """Decode `.inr` bytes to a PIL image (mode RGB or L).

    Raises:
        InrFormatError: the bytes are not a valid `.inr` file.
        OptionError: bad size options, or an output larger than `limits.max_pixels`.
    """
    return array_to_image(decode_array(data, res=res, size=size, scale=scale, device=device, limits=limits))
