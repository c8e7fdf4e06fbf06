"""One large photo through the default encoder, as a user runs it: family, seconds, steps, bpp against
the target, PSNR of the decoded file, WebP's PSNR at the largest quality within the same bytes, decode
time with default limits and the process's peak memory.

    python -m benchmarks.probes.large_photo IMAGE [--preset medium] [--effort 5] [--upscale WxH]

--upscale resizes the photo first (Lanczos), to stand in for a larger photo than the data has (the
result is smoother than a real photo of that size, so it says more about time and memory than about
quality). Prints one line of JSON.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import time

import numpy as np
from PIL import Image


def webp_at_most(img: Image.Image, pixels: np.ndarray, max_bytes: int) -> dict | None:
    from codec.metrics import psnr

    best = None
    for quality in range(0, 101, 2):
        buf = io.BytesIO()
        img.save(buf, "WEBP", quality=quality, method=6)
        if buf.tell() <= max_bytes:
            best = (quality, buf.getvalue())
    if best is None:
        return None
    decoded = np.asarray(Image.open(io.BytesIO(best[1])).convert("RGB"))
    return {"quality": best[0], "bpp": 8 * len(best[1]) / (pixels.shape[0] * pixels.shape[1]),
            "psnr": psnr(decoded, pixels)}


def main(argv=None) -> dict:
    import codec
    from codec.metrics import psnr

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--effort", type=int, default=None)
    ap.add_argument("--upscale", default=None, metavar="WxH")
    args = ap.parse_args(argv)
    img = Image.open(args.image).convert("RGB")
    if args.upscale:
        img = img.resize(tuple(int(v) for v in args.upscale.lower().split("x")), Image.LANCZOS)
    pixels = np.asarray(img)
    t0 = time.monotonic()
    result = codec.encode_with_stats(img, preset=args.preset, effort=args.effort)
    encode_s = time.monotonic() - t0
    t0 = time.monotonic()
    decoded = np.asarray(codec.decode(result.data).convert("RGB"))
    decode_s = time.monotonic() - t0
    out = {"image": args.image, "size": [img.width, img.height], "preset": args.preset, "effort": args.effort,
           "arch": result.arch, "encode_seconds": round(encode_s, 1), "steps": result.steps,
           "time_capped": result.time_capped, "bpp": result.bpp, "target_bpp": result.target_bpp,
           "psnr": psnr(decoded, pixels), "decode_seconds": round(decode_s, 2),
           "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
           "webp_within_bytes": webp_at_most(img, pixels, len(result.data))}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
