"""Our codec, ``codec.encode`` / ``codec.decode``, imported lazily.

Operating points are target rates (``bpp=``); the measured rate is always that
of the real bytes, and quality that of ``codec.decode`` of those bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from PIL import Image

from .base import Codec


def _source_hash(module) -> str:
    """SHA-256 over the .py files of a package: a changed codec is re-measured."""
    root = Path(module.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _plain(result) -> dict:
    """The JSON-friendly fields of an encoder's result object, without the bytes."""
    fields = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(vars(result))
    return {k: v for k, v in fields.items()
            if k != "data" and isinstance(v, (int, float, str, bool, type(None)))}


class InrCodec(Codec):
    name = "inr"
    description = "INR codec (this repository): quantized SIREN fitted per image"
    setting_name = "target_bpp"
    default_settings = (0.1, 0.25, 0.5, 0.75, 1.5)
    rate_is_ceiling = True  # codec.encode(bpp=X) promises a file of at most X bpp
    arch: str = "siren"  # the network family (--arch); "inr" stays the SIREN whatever the codec's default
    latent_sampling: str | None = None  # the latent family's grid sampling (--latent-sampling); None: the default

    def __init__(self, *, steps: int | None = None, time_budget: float | None = None, effort: int | None = None,
                 device: str | None = None, seed: int = 0, batched: bool = False, tf32: bool = False,
                 init: str | None = None, batch_pixels: int | None = None):
        self.steps, self.time_budget, self.effort, self.seed = steps, time_budget, effort, seed
        self.batch_pixels = batch_pixels  # pixels per step of the stacked encodes (None: the codec's default)
        self.init = init  # "meta" / "random"; None: the codec's default
        self.tf32 = tf32  # TF32 matrix products on CUDA (set for this benchmark process)
        self.batched = batched  # encode all images of a rate at once (codec.stacked.encode_many)
        self.requested_device = device
        self.device = device or "auto"
        self._codec = None

    def _module(self):
        if self._codec is None:
            import codec

            missing = [f for f in ("encode", "decode") if not hasattr(codec, f)]
            if missing:
                raise ImportError(f"package 'codec' ({getattr(codec, '__file__', None) or 'namespace package'}) "
                                  f"has no {', '.join(missing)}")
            self._codec = codec
        return self._codec

    def unavailable(self) -> str | None:
        try:
            self._module()
        except Exception as exc:  # ImportError, or the package failing at import
            return f"our codec is not importable: {type(exc).__name__}: {exc}"
        try:
            import torch
        except ImportError:  # pragma: no cover
            return None
        if self.requested_device is None:
            self.device = f"auto ({'cuda' if torch.cuda.is_available() else 'cpu'})"
        if "cuda" in self.device and torch.cuda.is_available():  # name the GPU in meta.device
            self.device += f" ({torch.cuda.get_device_name(0)})"
        return None

    def encode(self, img: Image.Image, setting) -> bytes:
        mod = self._module()
        self._precision()
        options = dict(bpp=float(setting), steps=self.steps, time_budget=self.time_budget, effort=self.effort,
                       device=self.requested_device, seed=self.seed, progress=False)
        if self.arch is not None:
            options["arch"] = self.arch
        if self.init is not None:
            options["init"] = self.init
        if self.latent_sampling is not None:
            options["latent_sampling"] = self.latent_sampling
        self._info = None
        if hasattr(mod, "encode_with_stats"):  # same encoder, plus what it did (steps run, ...)
            result = mod.encode_with_stats(img, **options)
            self._info = _plain(result)
            return result.data
        return mod.encode(img, **options)

    def encode_batch(self, imgs: list[Image.Image], setting) -> list[tuple[bytes, dict, float]]:
        """Every image at one rate in stacked fits: (bytes, encoder info, encode seconds) each.

        The seconds are each image's share of its stacked group's time plus its own finishing.
        """
        from codec.config import EncoderConfig
        from codec.imageio import load_pixels
        from codec.encoding.stacked import encode_many

        self._precision()
        config = EncoderConfig(bpp=float(setting), steps=self.steps, time_budget=self.time_budget, effort=self.effort,
                               device=self.requested_device, seed=self.seed, batch_pixels=self.batch_pixels,
                               **({"init": self.init} if self.init is not None else {}))
        results = encode_many([load_pixels(img) for img in imgs], config)
        return [(r.data, {**_plain(r), "stacked_images": len(imgs)}, r.seconds) for r in results]

    def _precision(self) -> None:
        if self.tf32:
            import torch

            torch.backends.cuda.matmul.allow_tf32 = True

    def last_encode_info(self) -> dict | None:
        return getattr(self, "_info", None)

    def decode(self, data: bytes) -> Image.Image:
        return self._module().decode(data, device=self.requested_device).convert("RGB")

    def config(self) -> dict:
        return {"steps": self.steps, "time_budget": self.time_budget, "effort": self.effort, "device": self.device, "seed": self.seed,
                "batched": self.batched, "tf32": self.tf32, "init": self.init, "batch_pixels": self.batch_pixels,
                **({"arch": self.arch} if self.arch is not None else {}),
                **({"latent_sampling": self.latent_sampling} if self.latent_sampling is not None else {})}

    def fingerprint(self) -> dict:
        mod = self._module()
        fp = {**self.config(), "codec_version": getattr(mod, "__version__", None), "codec_source": _source_hash(mod)}
        try:
            import bitstream

            fp["bitstream_source"] = _source_hash(bitstream)
        except Exception:
            pass
        return fp


class InrLatentCodec(InrCodec):
    """The same codec with the latent-grid family (`--arch latent`), so one run compares the families."""

    name = "inr-latent"
    description = "INR codec (this repository), latent-grid family: entropy-coded latent grids + a small MLP"
    arch = "latent"

    def __init__(self, **options):
        super().__init__(**options)
        self.batched = False  # stacked encoding (--inr-batched) fits SIRENs only: one image at a time here


class InrLatentBicubicCodec(InrLatentCodec):
    """The latent-grid family with bicubic sampling of its grids (`--latent-sampling bicubic`, format version 4)."""

    name = "inr-latent-bicubic"
    description = "INR codec (this repository), latent-grid family, bicubic sampling of the grids"
    latent_sampling = "bicubic"
