"""Loading a folder of images, with the reductions (limit, downscale) recorded."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class BenchImage:
    """One test image, already reduced, as 8-bit RGB."""

    name: str
    path: str
    original_size: tuple[int, int]  # (width, height) of the file
    source_mode: str
    pixels: np.ndarray = field(repr=False)  # HxWx3 uint8
    sha256: str  # of the reduced RGB pixels and their shape

    @property
    def size(self) -> tuple[int, int]:
        return (self.pixels.shape[1], self.pixels.shape[0])

    def image(self) -> Image.Image:
        return Image.fromarray(self.pixels, "RGB")

    def describe(self) -> dict:
        return {"file": self.name, "original_size": list(self.original_size), "size": list(self.size),
                "source_mode": self.source_mode, "sha256": self.sha256}


def dataset_name(folder: str | Path, limit: int | None, downscale: float | None, names: list[str] | None = None) -> str:
    """``kodak``, ``kodak_limit8``, ``kodak_limit8_x0.25``, ``kodak_images3``: the name says every reduction."""
    name = Path(folder).resolve().name
    if limit is not None:
        name += f"_limit{limit}"
    if names:
        name += f"_images{len(names)}"
    if downscale is not None and downscale != 1:
        name += f"_x{downscale:g}"
    return name


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(folder: str | Path, *, limit: int | None = None, downscale: float | None = None,
                names: list[str] | None = None) -> list[BenchImage]:
    """The images of ``folder`` sorted by file name, the first ``limit`` of them (or those whose file
    name or stem is in ``names``), each converted to RGB and, if ``downscale`` is given, resized by that
    factor with Lanczos (each side rounded, at least 1 pixel)."""
    paths = list_images(folder)
    if limit is not None:
        paths = paths[:limit]
    if names:
        unknown = sorted(set(names) - {p.name for p in paths} - {p.stem for p in paths})
        if unknown:
            raise FileNotFoundError(f"no image named {', '.join(unknown)} in {folder}")
        paths = [p for p in paths if p.name in names or p.stem in names]
    if not paths:
        raise FileNotFoundError(f"no images in {folder}")
    out = []
    for path in paths:
        with Image.open(path) as im:
            mode, original = im.mode, im.size
            rgb = im.convert("RGB")
        if downscale is not None and downscale != 1:
            w, h = (max(1, round(s * downscale)) for s in original)
            rgb = rgb.resize((w, h), Image.Resampling.LANCZOS)
        pixels = np.asarray(rgb, dtype=np.uint8).copy()
        digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
        out.append(BenchImage(path.name, str(path), original, mode, pixels, digest))
    return out
