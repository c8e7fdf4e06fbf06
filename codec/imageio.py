"""Reading input images (with a clear policy for every mode) and writing files atomically."""
from __future__ import annotations

import io
import os
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageInputError

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

#: largest image the encoder fits (pixels); larger ones are refused
MAX_ENCODE_PIXELS = 50_000_000
MAX_ENCODE_SIDE = 65535

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


def _open(path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if path.is_dir():
        raise ImageInputError(f"{path}: is a directory, not an image")
    if not path.is_file():
        raise ImageInputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageInputError(f"{path}: file is empty")
    try:
        with path.open("rb") as fh:
            return _read(fh, str(path))
    except PermissionError:
        raise ImageInputError(f"{path}: permission denied") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read(fh, name: str) -> Image.Image:
    """Open and fully load an image; the declared size is checked before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fh)
            w, h = img.size
            if w < 1 or h < 1:
                raise ImageInputError(f"{name}: image has no pixels ({w}x{h})")
            if max(w, h) > MAX_ENCODE_SIDE or w * h > MAX_ENCODE_PIXELS:
                raise ImageInputError(f"{name}: {w}x{h} is too large to encode "
                                      f"(limit {MAX_ENCODE_PIXELS} pixels, {MAX_ENCODE_SIDE} per side)")
            high_depth = _is_high_depth(img)
            img.load()
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(f"{name}: image is too large ({_one_line(exc)})") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{name}: not an image Pillow can read") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise assorted types for broken files
        raise ImageInputError(f"{name}: image data is broken or truncated ({_one_line(exc)})") from None
    if high_depth:
        img.info["inr_high_depth"] = True
    return img


def _is_high_depth(img: Image.Image) -> bool:
    """16-bit samples that Pillow would silently reduce to 8 bits (e.g. 48-bit RGB PNG -> RGB)."""
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        return False
    try:
        return any(";16" in str(t.args if hasattr(t, "args") else t[3]) for t in (img.tile or []))
    except Exception:  # noqa: BLE001 - tile layouts differ between plugins; only a hint
        return False


def _to_8bit(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if img.mode == "F":
        arr8 = np.clip(np.round(arr * 255.0), 0, 255)
    else:
        arr8 = np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255)
    return Image.fromarray(arr8.astype(np.uint8))


def normalize_mode(img: Image.Image, *, convert: bool = False, name: str = "image") -> Image.Image:
    """Apply the input policy: RGB and L pass; palette and 1-bit convert; the rest need `convert`.

    With `convert=True`: 16-bit and float -> 8-bit L, CMYK and other colour spaces -> RGB,
    transparent alpha -> composited onto white.
    """
    mode = img.mode
    if img.info.get("inr_high_depth"):
        if not convert:
            raise ImageInputError(f"{name}: 16-bit {mode} image has more than 8 bits per sample; "
                                  "pass --convert to reduce it to 8 bits")
        img.info.pop("inr_high_depth", None)
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        base = "L" if mode in ("LA", "La") else "RGB"
        img = img.convert("LA" if base == "L" else "RGBA")
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() == 255:
            return img.convert(base)
        if not convert:
            raise ImageInputError(f"{name}: image has transparency, which .inr does not store; pass --convert to composite it onto white")
        background = Image.new(img.mode, img.size, (255, 255) if base == "L" else (255, 255, 255, 255))
        return Image.alpha_composite(background.convert("RGBA"), img.convert("RGBA")).convert(base)
    if mode in _SIXTEEN_BIT or mode.startswith("I;16"):
        if not convert:
            raise ImageInputError(f"{name}: {mode} image has more than 8 bits per sample; pass --convert to reduce it to 8 bits")
        return _to_8bit(img if mode in ("I", "F") else img.convert("I"))
    if not convert:
        raise ImageInputError(f"{name}: {mode} images are not coded directly; pass --convert to convert to RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageInputError(f"{name}: cannot convert {mode} to RGB ({exc})") from None


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, so the image is coded as viewers show it (phone photos)."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block: code the pixels as stored
        return img


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    return "srgb" in ImageCms.getProfileDescription(profile).lower()


def to_srgb(img: Image.Image) -> Image.Image:
    """Colour policy: RGB(A) pixels with an embedded ICC profile that is not sRGB are converted to
    sRGB (relative colorimetric, by LittleCMS through Pillow's ImageCms).

    Images without a profile, with an sRGB one (its description names sRGB) or with an unreadable
    one are taken as sRGB, as they are; grayscale, palette and CMYK images (the latter only with
    --convert) ignore their profile.
    """
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA"):
        return img
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if _is_srgb(profile):
            return img
        rgb = img.convert("RGB") if img.mode == "RGBA" else img
        out = ImageCms.profileToProfile(rgb, profile, ImageCms.createProfile("sRGB"),
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB")
    except (OSError, ImageCms.PyCMSError, ValueError):
        return img
    if img.mode == "RGBA":
        out.putalpha(img.getchannel("A"))
    out.info = {k: v for k, v in img.info.items() if k != "icc_profile"}
    return out


def load_pixels(source: ImageSource, *, convert: bool = False) -> np.ndarray:
    """Any supported image source -> (H, W, C) uint8 array with C = 1 (grayscale) or 3 (RGB).

    Images are turned upright by their EXIF orientation and converted to sRGB when they embed
    another ICC profile (see :func:`to_srgb`) before the mode policy applies.

    Args:
        source: a path, PIL image, encoded image bytes, or a uint8 array (H, W), (H, W, 1) or (H, W, 3).
        convert: convert modes that are refused by default (16-bit, CMYK, transparency).
    Raises:
        ImageInputError: the source cannot be read or is refused by the input policy.
    """
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            raise ImageInputError(f"array images must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise ImageInputError(f"array images must be (H, W), (H, W, 1) or (H, W, 3), got shape {arr.shape}")
        name = "array"
    else:
        if isinstance(source, Image.Image):
            img, name = source, "image"
        elif isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageInputError("image bytes are empty")
            img, name = _read(io.BytesIO(source), "image bytes"), "image bytes"
        elif isinstance(source, (str, os.PathLike)):
            img, name = _open(source), str(source)
        else:
            raise ImageInputError(f"cannot read an image from {type(source).__name__}")
        img = normalize_mode(to_srgb(upright(img)), convert=convert, name=name)
        arr = np.asarray(img, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
    h, w = arr.shape[:2]
    if h < 1 or w < 1:
        raise ImageInputError(f"{name}: image has no pixels ({w}x{h})")
    if max(h, w) > MAX_ENCODE_SIDE or h * w > MAX_ENCODE_PIXELS:
        raise ImageInputError(f"{name}: {w}x{h} is too large to encode (limit {MAX_ENCODE_PIXELS} pixels, {MAX_ENCODE_SIDE} per side)")
    return np.ascontiguousarray(arr)


def check_writable(path) -> None:
    """Fail early (before a long encode) if `path` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OSError(f"{path}: is a directory")
    if not parent.is_dir():
        raise OSError(f"{parent}: output folder does not exist")
    if not os.access(parent, os.W_OK):
        raise OSError(f"{parent}: output folder is not writable")
    try:  # the real test (os.access says yes to root, also on read-only file systems)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OSError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def write_atomic(path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: never a partial file."""
    path = Path(path)
    check_writable(path)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:  # mode 0o666 less the umask, like any new file (mkstemp would make it 0o600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise OSError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def image_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    """Encode a PIL image in a Pillow format (PNG by default)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()
