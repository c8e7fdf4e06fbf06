"""Classic baselines through Pillow and its plugins.

Each is a quality sweep chosen to span roughly 0.1-2 bpp on Kodak.  Encoder
options are fixed here and recorded in the results (``meta.settings``).
"""
from __future__ import annotations

import io
from importlib import metadata

import PIL
from PIL import Image, features

from .base import Codec


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


class PillowCodec(Codec):
    """A codec Pillow can save and open by format name."""

    format: str = ""
    feature: str | None = None  # PIL.features name of the native library
    save_options: dict = {}

    def unavailable(self) -> str | None:
        Image.init()  # Pillow registers its format plugins lazily
        if self.format.upper() not in Image.SAVE:
            return f"Pillow {PIL.__version__} cannot write {self.format}"
        return None

    def options(self, setting) -> dict:
        return {"quality": int(setting), **self.save_options}

    def encode(self, img: Image.Image, setting) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=self.format, **self.options(setting))
        return buf.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")

    def fingerprint(self) -> dict:
        fp = {"pillow": PIL.__version__, "options": self.save_options}
        if self.feature:
            fp[self.feature] = features.version(self.feature)
            if self.feature == "jpg" and features.check_feature("libjpeg_turbo"):
                fp["libjpeg_turbo"] = features.version("libjpeg_turbo")
        return fp

    def config(self) -> dict:
        return {"format": self.format, "save_options": self.save_options, **self.fingerprint()}


_QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95)


class JPEG420(PillowCodec):
    name = "jpeg420"
    description = "JPEG 4:2:0 (Pillow, libjpeg-turbo, optimize=True)"
    format = "JPEG"
    feature = "jpg"
    save_options = {"subsampling": 2, "optimize": True}
    default_settings = _QUALITIES


class JPEG444(JPEG420):
    name = "jpeg444"
    description = "JPEG 4:4:4 (Pillow, libjpeg-turbo, optimize=True)"
    save_options = {"subsampling": 0, "optimize": True}


class WebP(PillowCodec):
    name = "webp"
    description = "WebP lossy (Pillow, libwebp, method=6)"
    format = "WEBP"
    feature = "webp"
    save_options = {"method": 6}
    default_settings = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


class AVIF(PillowCodec):
    name = "avif"
    description = "AVIF 4:4:4 (Pillow, libavif, speed=6)"
    format = "AVIF"
    feature = "avif"
    save_options = {"subsampling": "4:4:4", "speed": 6}
    default_settings = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)

    def unavailable(self) -> str | None:
        Image.init()
        if "AVIF" not in Image.SAVE:
            try:  # Pillow < 11.2: the pillow-avif-plugin package registers it
                import pillow_avif  # noqa: F401
            except ImportError:
                return "AVIF needs Pillow >= 11.2 built with libavif, or `pip install pillow-avif-plugin`"
        return super().unavailable()

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "pillow-avif-plugin": _version("pillow-avif-plugin")}


class JPEG2000(PillowCodec):
    """JPEG 2000; the setting is the target rate in bpp (OpenJPEG rate allocation, approximate:
    the file's headers come on top, so the real rate is a few percent higher)."""

    name = "jpeg2000"
    description = "JPEG 2000 (Pillow, OpenJPEG, 9/7 irreversible, rate-targeted)"
    format = "JPEG2000"
    feature = "jpg_2000"
    setting_name = "target_bpp"
    save_options = {"irreversible": True, "quality_mode": "rates"}
    default_settings = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0)

    def options(self, setting) -> dict:
        # OpenJPEG's "rates" are compression ratios against the 24-bit raw image
        return {**self.save_options, "quality_layers": [24.0 / float(setting)]}


class HEIC(PillowCodec):
    """HEVC intra in a HEIF container: the stand-in for BPG."""

    name = "heic"
    description = "HEIC / HEVC intra 4:4:4 (pillow-heif, libheif + x265)"
    format = "HEIF"
    save_options = {"chroma": 444}
    default_settings = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)

    def unavailable(self) -> str | None:
        try:
            import pillow_heif
        except ImportError:
            return "HEIC needs `pip install pillow-heif`"
        pillow_heif.register_heif_opener()
        return super().unavailable()

    def fingerprint(self) -> dict:
        fp = {"pillow": PIL.__version__, "options": self.save_options, "pillow-heif": _version("pillow-heif")}
        try:
            import pillow_heif

            info = pillow_heif.libheif_info()
            fp["libheif"] = info.get("libheif")
            fp["encoder"] = info.get("HEIF")
        except Exception:  # pragma: no cover - optional detail
            pass
        return fp


class JPEGXL(PillowCodec):
    name = "jxl"
    description = "JPEG XL lossy (pillow-jxl-plugin, libjxl, effort=7)"
    format = "JXL"
    save_options = {"effort": 7}
    default_settings = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

    def unavailable(self) -> str | None:
        Image.init()
        if "JXL" not in Image.SAVE:
            try:
                import pillow_jxl  # noqa: F401
            except ImportError:
                return "JPEG XL needs `pip install pillow-jxl-plugin`"
        return super().unavailable()

    def fingerprint(self) -> dict:
        return {"pillow": PIL.__version__, "options": self.save_options, "pillow-jxl-plugin": _version("pillow-jxl-plugin")}
