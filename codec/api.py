"""The library API: bytes in, bytes out, for senders and receivers."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from .config import EncoderConfig
from .decoding import DecodeLimits, decode_image
from .imageio import ImageSource, load_pixels

if TYPE_CHECKING:  # the fitting stack is imported only when encoding, never by a decoder
    from .encoding import EncodeResult


def encode_with_stats(image: ImageSource, config: EncoderConfig | None = None, **options) -> "EncodeResult":
    """Like :func:`encode`, returning the file with its measurements (bytes, bpp, PSNR, ...).

    Raises ModuleNotFoundError (name "torch") where torch is not installed: decoding needs numpy only.
    """
    cfg = EncoderConfig.from_options(config, **options)
    try:
        from .encoding import encode_pixels
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise ModuleNotFoundError("encoding needs torch, which is not installed (pip install torch==2.13.0); "
                                  "decoding works without it", name="torch") from None
    return encode_pixels(load_pixels(image, convert=cfg.convert), cfg)


def encode(image: ImageSource, config: EncoderConfig | None = None, **options) -> bytes:
    """Compress an image to `.inr` bytes.

    Args:
        image: a PIL image, a uint8 numpy array (H, W) / (H, W, 1) / (H, W, 3), encoded image bytes, or a path.
        config: all settings at once (an EncoderConfig); the options below, when given, override its fields.
    Options (keywords; None or absent: the codec's default):
        bpp: target rate; the file is at most this many bits per pixel (header included).
        preset: a named operating point ("low", "medium", "high", "max"); "medium" if neither is given.
        steps: optimisation steps over all phases (default: planned from the time budget on the
            CPU, 2000 on a GPU at the default effort).
        time_budget: seconds the encode may take (default: the effort's budget on the CPU when steps
            is not given either, else none). Without steps, the step count is planned from it up front
            by a fixed cost model (so the bytes do not depend on the machine's load); reaching it
            only stops early, and the result's ``time_capped`` says so.
        effort: 1..9, higher is slower and better (default 5): the CPU time budget when neither steps
            nor time_budget is given, max(150 s, 60 s per megapixel) at 5 (config.EFFORT_FLOOR_SECONDS,
            EFFORT_SECONDS_PER_MEGAPIXEL); on a GPU the step count, doubled per level above 5.
        device: "auto" (default: CUDA when available), "cpu" or "cuda".
        seed: makes the result reproducible on the same device (when limited by steps, not time).
        arch: network family, "latent" (latent grids), "siren", "poly" (Poly-INR) or "auto" (default: the
            latent grids where their file fits the decoders' default parameter limit, about 3 megapixels,
            and no SIREN-only option is given; else the SIREN).
        sparsity: SIREN / Poly-INR: fraction of weights pruned by magnitude before quantization.
        init: SIREN: "meta" (start from the packaged meta-learned weights of the chosen network, where
            there are some) or "random" (default).
        latent_sampling: latent grids: "bilinear" (default) or "bicubic" (format version 4 or later).
        convert: convert 16-bit, CMYK and transparent images instead of refusing them.
        progress: show a progress bar on stderr.
    Returns:
        The complete `.inr` file.
    Raises:
        ImageInputError: the image cannot be read or is refused (see README for the policy).
        OptionError: an unknown option, one out of range, or a bpp target that cannot be met.
    """
    return encode_with_stats(image, config, **options).data


def decode(
    data: bytes,
    *,
    res: int | None = None,
    size: tuple[int, int] | None = None,
    scale: float | None = None,
    device: str | None = None,
    max_pixels: int | None = None,
    max_work: int | None = None,
    limits: DecodeLimits | None = None,
    backend: str | None = None,
    render: str = "image",
) -> Image.Image:
    """Decompress `.inr` bytes to a PIL image (mode RGB or L). Thread-safe.

    Args:
        data: the whole `.inr` file.
        res: make the longer side `res` pixels, aspect ratio kept.
        size: exact output (width, height).
        scale: factor applied to the original size.
        effort: 1..9, higher is slower and better (default 5): the CPU time budget when neither steps
            nor time_budget is given, max(150 s, 60 s per megapixel) at 5 (config.EFFORT_FLOOR_SECONDS,
            EFFORT_SECONDS_PER_MEGAPIXEL); on a GPU the step count, doubled per level above 5.
        device: "auto" (default), "cpu" or "cuda".
        max_pixels: raise the output-pixel limit (default 89,478,485, as Pillow's).
        max_work: raise the multiply-add limit (default 5e11, see DecodeLimits).
        limits: all limits at once (max_pixels / max_work, when given, override its fields).
        backend: "auto" (default: torch when installed, else numpy), "torch" or "numpy".
        render: "image" (default), or "gradient" / "laplacian": views of the network's derivatives (mode L).
    Raises:
        InrFormatError: `data` is not a valid `.inr` file (truncated, corrupted, unsupported, too
            large), or decoding it at this size would exceed the multiply-add limit (DecodeWorkError).
        OptionError: bad size options or a requested output over the pixel limit (a file whose own
            size is over it raises ImageTooLargeError, both an InrFormatError and an OptionError).
    """
    limits = limits if limits is not None else DecodeLimits()
    if max_pixels is not None:
        limits = replace(limits, max_pixels=max_pixels)
    if max_work is not None:
        limits = replace(limits, max_work=max_work)
    return decode_image(bytes(data), res=res, size=size, scale=scale, device=device, limits=limits,
                        backend=backend, render=render)


def encode_to(image: ImageSource, fp: BinaryIO, **options) -> int:
    """Encode `image` and write the file to the binary stream `fp`; returns the bytes written.

    Takes the same keyword options as :func:`encode`.
    """
    data = encode(image, **options)
    fp.write(data)
    return len(data)


def decode_from(fp: BinaryIO, **options) -> Image.Image:
    """Read a whole `.inr` file from the binary stream `fp` and decode it (options as :func:`decode`)."""
    return decode(fp.read(), **options)
