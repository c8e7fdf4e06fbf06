"""Measuring a codec over a set of images and operating points, with an on-disk cache."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import metrics
from .base import Codec
from .dataset import BenchImage


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Cache:
    """Per-image, per-operating-point records in a JSONL file, keyed by everything
    that determines them: codec, its fingerprint (library versions / source hash
    and options), the setting, the image name and a hash of its reduced pixels."""

    def __init__(self, path: Path | None, *, load: bool = True):
        """``path`` None keeps records in memory only; ``load=False`` ignores what the file holds."""
        self.path = path
        self.records: dict[str, dict] = {}
        if load and path is not None and path.exists():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.records[entry["key"]] = entry["record"]
                except (ValueError, KeyError):
                    continue  # a line cut short by an interrupted run

    @staticmethod
    def key(codec: str, fingerprint: dict, setting, image: BenchImage) -> str:
        blob = json.dumps({"codec": codec, "fingerprint": fingerprint, "setting": setting,
                           "image": image.name, "pixels": image.sha256}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, key: str, record: dict) -> None:
        self.records[key] = record
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as f:
                f.seek(0, 2)
                if f.tell():  # after a run killed mid-line, start on a fresh line
                    f.seek(-1, 2)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                f.write((json.dumps({"key": key, "record": record}) + "\n").encode())


def measure(codec: Codec, setting, image: BenchImage, encoded: tuple | None = None) -> dict:
    """Encode, decode and score one image at one operating point.

    Rate is that of the returned bytes; quality that of their decoding. Errors
    are caught and returned in the record's ``error`` field. `encoded`: the
    (bytes, encoder info, encode seconds) of an encode already made (a batch),
    or an exception it raised; None encodes here.
    """
    w, h = image.size
    rec = {"image": image.name, "setting": setting, "width": w, "height": h, "device": codec.device,
           "date": _now()}
    try:
        if isinstance(encoded, Exception):
            raise encoded
        if encoded is None:
            src = image.image()
            t0 = time.perf_counter()
            data = codec.encode(src, setting)
            encoding_time = time.perf_counter() - t0
            info = codec.last_encode_info()
        else:
            data, info, encoding_time = encoded
        t1 = time.perf_counter()
        out = codec.decode(data)
        t2 = time.perf_counter()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"encode returned {type(data).__name__}, expected bytes")
        dec = metrics.as_rgb_array(out)
        if dec.shape != image.pixels.shape:
            raise ValueError(f"decoded size {dec.shape[1]}x{dec.shape[0]} != original {w}x{h}")
        mse = metrics.mse(image.pixels, dec)
        ms = metrics.ms_ssim_details(image.pixels, dec)
        rec.update({
            "bytes": len(data), "bpp": 8.0 * len(data) / (w * h),
            "mse": mse, "psnr": metrics.psnr_from_mse(mse),
            "ms-ssim": ms["ms_ssim"], "ms-ssim-db": metrics.ms_ssim_db(ms["ms_ssim"]),
            "ms_ssim_scales": ms["scales"], "ms_ssim_win": ms["win_size"],
            "encoding_time": encoding_time, "decoding_time": t2 - t1,
        })
        if info:
            rec["encoder"] = info
        warnings = []
        if info and info.get("bytes") not in (None, len(data)):
            warnings.append(f"encoder reported {info['bytes']} bytes, the file has {len(data)}")
        if codec.rate_is_ceiling and rec["bpp"] > float(setting) + 1e-9:
            warnings.append(f"rate {rec['bpp']:.4f} bpp exceeds the target {setting}")
        if warnings:
            rec["warning"] = "; ".join(warnings)
    except Exception as exc:  # one failed point must not end the benchmark
        rec["error"] = f"{type(exc).__name__}: {exc}"
    return rec


def _encode_batch(codec: Codec, setting, images: list[BenchImage]) -> list:
    """The codec's batch encode of `images` at one setting: one (bytes, info, seconds) or exception each."""
    try:
        return list(codec.encode_batch([im.image() for im in images], setting))
    except Exception as exc:  # the whole batch failed: each image gets the error
        return [exc] * len(images)


def run_codec(codec: Codec, settings: Iterable, images: list[BenchImage], cache: Cache, *,
              fingerprint: dict, retry_errors: bool = False, cached_only: bool = False,
              log: Callable[[str], None] | None = None) -> list[dict]:
    """All (setting, image) records of one codec, measured or taken from the cache.

    A codec with ``batched`` set encodes the missing images of a setting in one
    ``encode_batch`` call (many fits at once on a GPU), then each is decoded and scored.
    `cached_only`: nothing is measured; a point missing from the cache is an error record
    (to assemble results from caches that parallel runs filled).
    """
    settings = list(settings)
    total, done, records = len(settings) * len(images), 0, []
    for setting in settings:
        keys = [Cache.key(codec.name, fingerprint, setting, image) for image in images]
        cached = [cache.get(key) for key in keys]
        cached = [rec if rec is not None and not (retry_errors and "error" in rec) else None for rec in cached]
        encoded = [None] * len(images)
        missing = [i for i, rec in enumerate(cached) if rec is None]
        if cached_only:
            for i in missing:
                cached[i] = {"image": images[i].name, "setting": setting, "error": "not in the cache (--cached-only)"}
            missing = []
        if getattr(codec, "batched", False) and missing:
            for i, result in zip(missing, _encode_batch(codec, setting, [images[i] for i in missing])):
                encoded[i] = result
        for i, image in enumerate(images):
            done += 1
            rec = cached[i]
            if rec is None:
                rec = measure(codec, setting, image, encoded[i])
                cache.put(keys[i], rec)
            records.append(rec)
            if log:
                log(f"[{codec.name} {done}/{total}] {image.name} {codec.setting_name}={setting}: "
                    + _summary(rec) + (" (cached)" if cached[i] is not None else ""))
    return records


def _summary(rec: dict) -> str:
    if "error" in rec:
        return "ERROR " + rec["error"]
    s = (f"{rec['bpp']:.4f} bpp, {rec['psnr']:.2f} dB, MS-SSIM {rec['ms-ssim']:.4f}, "
         f"enc {rec['encoding_time']:.2f} s, dec {rec['decoding_time']:.3f} s")
    if "steps" in rec.get("encoder", {}):
        s += f", {rec['encoder']['steps']} steps"
    return s + (f" WARNING {rec['warning']}" if "warning" in rec else "")


RESULT_KEYS = ("bpp", "psnr", "ms-ssim", "encoding_time", "decoding_time")


def aggregate(records: list[dict], settings: list, n_images: int) -> tuple[dict, list, list]:
    """CompressAI-style ``results`` (one entry per operating point, mean over images).

    An operating point enters the results only if every image succeeded, so all
    points average the same images. Returns ``(results, settings_kept, failed)``.
    """
    keys = RESULT_KEYS + ("psnr_of_mean_mse", "ms-ssim-db", "bytes")
    results: dict[str, list] = {k: [] for k in keys}
    kept, failed = [], []
    for setting in settings:
        recs = [r for r in records if r["setting"] == setting]
        errors = [f"{r['image']}: {r['error']}" for r in recs if "error" in r]
        if errors or len(recs) != n_images:
            failed.append({"setting": setting, "errors": errors})
            continue
        kept.append(setting)
        for k in RESULT_KEYS + ("ms-ssim-db", "bytes"):
            results[k].append(float(np.mean([r[k] for r in recs])))
        results["psnr_of_mean_mse"].append(metrics.psnr_from_mse(float(np.mean([r["mse"] for r in recs]))))
    return results, kept, failed


def stderr_log(quiet: bool) -> Callable[[str], None] | None:
    if quiet:
        return None
    return lambda msg: print(msg, file=sys.stderr, flush=True)
