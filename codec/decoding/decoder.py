"""bytes -> image at any size. Imports only the format, the model definition and rendering.

torch is optional here: with it the network is rendered by codec.decoding.render (CPU or CUDA); without
it (or with backend="numpy") by codec.decoding.numpy_render, which needs numpy alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

import bitstream
from bitstream import Header
from bitstream.container import decode_payload, split_file

from ..errors import OptionError
from ..families.registry import family
from .numpy_render import WORK_FACTOR
from .resample import downscale_rows, evaluation_size

if TYPE_CHECKING:
    import torch

#: default limit on output pixels per decode, the same as Pillow's decompression-bomb limit; also the most
#: declared pixels that earn a latent-grid file its latent values (bitstream.latent_limit)
DEFAULT_MAX_PIXELS = bitstream.DEFAULT_MAX_PIXELS
#: default limit on multiply-adds per decode (network multiply-adds per pixel x output pixels):
#: about 17 s on 2 CPU cores; a 0.6 bpp SIREN file of a 768x512 photo rendered at 3840x2560 needs 3.4e11
DEFAULT_MAX_WORK = 500_000_000_000
MAX_OUTPUT_SIDE = 65535
BACKENDS = ("auto", "torch", "numpy")
RENDERS = tuple(WORK_FACTOR)  # "image", "gradient", "laplacian"


@dataclass(frozen=True)
class DecodeLimits:
    """What a decoder accepts: network size (from the file), output pixels and work (per request).

    All are checked before anything proportional to them is allocated or computed, so the memory
    and time a hostile file can cost are bounded by these numbers.

    Attributes:
        max_parameters: largest network (stored values), the latent grids of a latent-grid file apart.
        max_latents_per_pixel: a latent-grid file's grids may hold max(max_parameters,
            max_latents_per_pixel x min(width x height, max_pixels)) values, width x height being the
            file's declared size (bitstream.latent_limit; default 4, FORMAT.md §7 step 9).
        max_pixels: largest output (width x height); also the most declared pixels that count above.
        max_work: most multiply-adds per decode: the network's multiply-adds per pixel (the sizes
            of its weight matrices summed) x output pixels (x 3 for a gradient view, x 5 for a
            Laplacian view).
    """

    max_parameters: int = bitstream.DEFAULT_MAX_PARAMETERS
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_work: int = DEFAULT_MAX_WORK
    max_latents_per_pixel: int = bitstream.DEFAULT_MAX_LATENTS_PER_PIXEL

    def file_limits(self) -> dict:
        """The keyword arguments of bitstream.split_file / read_header / check_network_size for these limits."""
        return {"max_parameters": self.max_parameters, "max_latents_per_pixel": self.max_latents_per_pixel,
                "max_pixels": self.max_pixels}

    def validated(self) -> "DecodeLimits":
        for name in ("max_parameters", "max_pixels", "max_work", "max_latents_per_pixel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"{name} must be a positive integer, got {value!r}")
        return self


class DecodeWorkError(bitstream.InrFormatError):
    """Decoding a file at the requested size would take more multiply-adds than the limit allows."""


def multiply_adds_per_pixel(header: Header) -> int:
    """Multiply-adds the file's network costs per output pixel: the sizes of its weight matrices."""
    return bitstream.multiply_adds(header.arch, header.hidden_width, header.hidden_layers, header.channels, header.grid())


def check_work(header: Header, width: int, height: int, limits: DecodeLimits, *, render: str = "image") -> int:
    """The work of rendering `header`'s network at width x height; DecodeWorkError if over the limit."""
    per_pixel = multiply_adds_per_pixel(header)
    work = per_pixel * width * height * WORK_FACTOR[render]
    if work > limits.max_work:
        what = "" if render == "image" else f" as a {render} view (x{WORK_FACTOR[render]})"
        raise DecodeWorkError(
            f"decoding {width}x{height} pixels{what} with this file's network ({per_pixel} multiply-adds per "
            f"pixel) takes {work:.3g} multiply-adds, more than the limit of {limits.max_work:.3g}; decode it "
            f"smaller (--res/--size/--scale) or raise the limit with --max-work (DecodeLimits.max_work)"
        )
    return work


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


def build_model(header: Header, weights: list[np.ndarray], device: "torch.device") -> "torch.nn.Module":
    """A torch network of the header's family and dimensions holding exactly `weights` (file order)."""
    from ..families.registry import build_network, load_weights

    model = build_network(header.arch, channels=header.channels, hidden_width=header.hidden_width,
                          hidden_layers=header.hidden_layers, omega0=header.omega0, grid=header.grid())
    return load_weights(model, weights).to(device).eval()


def torch_available() -> bool:
    """Whether torch can be imported (a receiver may have numpy only)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(backend: str | None, device: str | None) -> str:
    """Pick the renderer, "torch" or "numpy" ("auto": torch when installed). OptionError for impossible asks."""
    backend = (backend or "auto").lower()
    if backend not in BACKENDS:
        raise OptionError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    device_name = (device or "auto").lower()
    if backend == "auto":
        backend = "torch" if torch_available() else "numpy"
    elif backend == "torch" and not torch_available():
        raise OptionError("backend torch was asked for, but torch is not installed")
    if backend == "numpy" and device_name not in ("auto", "cpu"):
        raise OptionError(f"--device {device_name} needs torch; the numpy decoder runs on the CPU only")
    return backend


def read_checked(data: bytes, limits: DecodeLimits = DecodeLimits()) -> tuple[Header, list[np.ndarray]]:
    """Every check a decode makes of the file itself, without rendering: framing, checksum, header, the
    file limits of `limits` (network size, latent values) and the payload, entropy-decoded. Returns the
    header and the integer tensors. What it refuses (InrFormatError), decode_array refuses at every output
    size; what it accepts, decode_array renders unless the request is over max_pixels or max_work. inr-info
    and the Pillow plugin (at open, the header part) use it, so that every reader accepts the same files."""
    header, payload = split_file(data, **limits.validated().file_limits())
    return header, decode_payload(header, payload)


def decode_array(data: bytes, *, res=None, size=None, scale=None, device=None,
                 limits: DecodeLimits = DecodeLimits(), backend: str | None = None,
                 render: str = "image") -> np.ndarray:
    """Decode `.inr` bytes to a (height, width, channels) uint8 array. See :func:`decode_image`."""
    limits = limits.validated()
    if render not in RENDERS:
        raise OptionError(f"unknown render {render!r}: choose one of {', '.join(RENDERS)}")
    header, payload = split_file(data, **limits.file_limits())
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
    if render != "image" and bitstream.ARCHITECTURES[header.arch].has_grid:
        raise OptionError(f"the {render} view needs a smooth network; this file's family "
                          f"({bitstream.architectures.NAMES[header.arch]}) is piecewise linear: decode it as an image")
    check_work(header, width, height, limits, render=render)
    which = choose_backend(backend, device) if render == "image" else "numpy"  # views: forward mode in numpy
    weights = bitstream.dequantize(header, decode_payload(header, payload))
    if render != "image":
        from .numpy_render import render_view

        return render_view(header, weights, height, width, render)
    auto = (backend or "auto").lower() == "auto"
    if which == "torch" and auto and hasattr(family(header.arch).numpy(), "render_rows"):  # the faster on a CPU
        from ..devices import resolve_device

        which = "numpy" if resolve_device(device).type == "cpu" else "torch"
    evaluated = evaluation_size((header.width, header.height), (width, height),
                                min(limits.max_pixels, limits.max_work // multiply_adds_per_pixel(header)))
    if evaluated != (width, height):  # below the stored size: render at its density, then filter
        return _downscaled(header, weights, which, device, evaluated, (width, height))
    if which == "numpy":
        from .numpy_render import render_image

        return render_image(header, weights, height, width)
    from ..devices import resolve_device
    from .render import render as render_torch

    dev = resolve_device(device)
    model = build_model(header, weights, dev)
    return render_torch(model, height, width, hidden_width=header.hidden_width, device=dev)


def _downscaled(header: Header, weights: list[np.ndarray], which: str, device, evaluated: tuple[int, int],
                out: tuple[int, int]) -> np.ndarray:
    """The network rendered at `evaluated` (width, height) by the `which` backend, row chunk by row
    chunk, and Lanczos-filtered onto `out` (codec.decoding.resample)."""
    from .numpy_render import to_uint8

    if which == "numpy":
        from .numpy_render import render_chunks

        chunks = render_chunks(header, weights, evaluated[1], evaluated[0])
    else:
        from ..devices import resolve_device
        from .render import render_chunks as torch_chunks

        dev = resolve_device(device)
        chunks = torch_chunks(build_model(header, weights, dev), evaluated[1], evaluated[0],
                              hidden_width=header.hidden_width, device=dev)
    # the range a decode clamps to (NaN as mid grey), before filtering
    clipped = ((start, stop, np.clip(np.nan_to_num(v, nan=0.0), -1.0, 1.0)) for start, stop, v in chunks)
    pixels = np.empty((out[1], out[0], header.channels), dtype=np.uint8)
    for start, stop, values in downscale_rows(clipped, evaluated, out):
        pixels[start:stop] = to_uint8(values)
    return pixels


def array_to_image(pixels: np.ndarray) -> Image.Image:
    """(H, W, 1) -> mode L, (H, W, 3) -> mode RGB."""
    if pixels.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]))
    return Image.fromarray(np.ascontiguousarray(pixels))


def decode_image(data: bytes, *, res=None, size=None, scale=None, device=None,
                 limits: DecodeLimits = DecodeLimits(), backend: str | None = None,
                 render: str = "image") -> Image.Image:
    """Decode `.inr` bytes to a PIL image (mode RGB or L; L for the gradient and Laplacian views).

    Args:
        backend: "auto" (torch when installed, else numpy), "torch" or "numpy".
        render: "image", or "gradient" / "laplacian" for the derivative views (numpy, CPU).
    Raises:
        InrFormatError: the bytes are not a valid `.inr` file, or decoding them at this size is
            over `limits.max_work` (DecodeWorkError).
        OptionError: bad size options, or an output larger than `limits.max_pixels`.
    """
    return array_to_image(decode_array(data, res=res, size=size, scale=scale, device=device, limits=limits,
                                       backend=backend, render=render))
