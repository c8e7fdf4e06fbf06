"""``python -m benchmarks`` / ``inr-bench``: rate–distortion sweeps and reports."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import PIL

from . import report
from .registry import ANCHOR, REGISTRY, InrCodec
from .dataset import dataset_name, load_images
from .runner import Cache, aggregate, run_codec, stderr_log

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_DATASET = REPO_ROOT.parent / "shared" / "data" / "kodak"
DEFAULT_ANCHORS = REPO_ROOT.parent / "shared" / "anchors" / "kodak_published.json"


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _points(text: str) -> tuple[str, list[float]]:
    name, sep, values = text.partition("=")
    if not sep or name not in REGISTRY:
        raise argparse.ArgumentTypeError(f"expected CODEC=v1,v2,... with CODEC one of {', '.join(REGISTRY)}")
    return name, _floats(values)


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inr-bench", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Rate–distortion benchmark of the .inr codec and classic baselines on a folder of images. "
                    "Writes <codec>.json (CompressAI schema + meta + per_image), bd_rate.md and rd_plot.png to --out; "
                    "per-image results are cached in --out/cache/, so a rerun only measures what is missing.")
    p.add_argument("dataset", nargs="?", default=str(DEFAULT_DATASET), help="folder of images")
    p.add_argument("--codecs", default="all",
                   help=f"comma-separated codecs among {','.join(REGISTRY)}, or 'all'; unavailable ones are skipped")
    p.add_argument("--limit", type=_positive(int), default=None, help="use only the first N images (sorted by name)")
    p.add_argument("--images", type=lambda v: [n.strip() for n in v.split(",") if n.strip()], default=None,
                   help="use only these images (comma-separated file names or stems, e.g. kodim01,kodim23)")
    p.add_argument("--downscale", type=_positive(float), default=None,
                   help="resize every image by this factor (Lanczos) before coding, e.g. 0.25")
    p.add_argument("--out", default=None, help="results folder; unset: benchmarks/results/<dataset-name>/")
    p.add_argument("--inr-bpps", type=_floats, default=list(InrCodec.default_settings),
                   help="target rates (bpp) of our codec, comma-separated")
    p.add_argument("--inr-steps", type=_positive(int), default=None, help="fitting steps of our codec (codec default if unset)")
    p.add_argument("--inr-time-budget", type=_positive(float), default=None,
                   help="encoding time budget per image in seconds for our codec (codec default if unset)")
    p.add_argument("--inr-effort", type=int, choices=range(1, 10), default=None, metavar="1..9",
                   help="encoder effort of our codec (codec default if unset)")
    p.add_argument("--inr-batched", action="store_true",
                   help="encode all images of a rate at once in stacked networks (codec.stacked; fixed --inr-steps)")
    p.add_argument("--inr-batch-pixels", type=_positive(int), default=None,
                   help="with --inr-batched: random pixels per image and step (codec default if unset: whole image on a GPU)")
    p.add_argument("--inr-init", choices=("meta", "random"), default=None,
                   help="our codec's starting weights (codec default if unset)")
    p.add_argument("--inr-tf32", action="store_true", help="TF32 matrix products on CUDA for our codec's encodes")
    p.add_argument("--device", default=None, help="torch device of our codec (codec default if unset)")
    p.add_argument("--seed", type=int, default=0, help="seed of our codec")
    p.add_argument("--points", type=_points, action="append", default=[], metavar="CODEC=v1,v2",
                   help="override a baseline's operating points (quality, or target bpp for jpeg2000); repeatable")
    p.add_argument("--anchors", default=str(DEFAULT_ANCHORS), help="published anchors JSON for the table and plot ('' for none)")
    p.add_argument("--retry-errors", action="store_true", help="re-measure cached points that failed")
    p.add_argument("--fresh", action="store_true", help="ignore (and overwrite) the cache")
    p.add_argument("--cached-only", action="store_true",
                   help="measure nothing: results from the cache alone, a missing point is a failed one "
                        "(to assemble the caches of parallel runs)")
    p.add_argument("--report-only", action="store_true", help="only rebuild bd_rate.md and rd_plot.png from --out")
    p.add_argument("--no-plot", action="store_true", help="do not draw rd_plot.png")
    p.add_argument("--list-codecs", action="store_true", help="list codecs and whether they can run here, then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _environment() -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
           "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
           "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None, "numpy": np.__version__, "pillow": PIL.__version__}
    try:
        import torch

        env.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), cuda_available=torch.cuda.is_available())
    except ImportError:
        env["torch"] = None
    for dist in ("pillow-heif", "pillow-jxl-plugin", "pillow-avif-plugin", "inr-codec"):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _make_codec(name: str, args) -> object:
    cls = REGISTRY[name]
    if issubclass(cls, InrCodec):  # both families of our codec take the --inr-* options
        return cls(steps=args.inr_steps, time_budget=args.inr_time_budget, effort=args.inr_effort, device=args.device,
                   seed=args.seed, batched=args.inr_batched, tf32=args.inr_tf32,
                        init=args.inr_init, batch_pixels=args.inr_batch_pixels)
    return cls()


def _settings(codec, args) -> list:
    if isinstance(codec, InrCodec):
        values = args.inr_bpps
    else:
        overrides = dict(args.points)
        values = overrides.get(codec.name, codec.default_settings)
    if codec.setting_name == "target_bpp":
        return [float(v) for v in values]
    return [int(v) if float(v).is_integer() else float(v) for v in values]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0, or 1 if some operating point failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    log = stderr_log(args.quiet)
    if args.codecs == "all":
        names = list(REGISTRY)
    else:
        names = [n.strip() for n in args.codecs.split(",") if n.strip()]
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            parser.error(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")

    if args.inr_batch_pixels is not None and not args.inr_batched:
        parser.error("--inr-batch-pixels applies to --inr-batched encodes only")
    if args.list_codecs:
        for name in REGISTRY:
            codec = _make_codec(name, args)
            why = codec.unavailable()
            print(f"{name:10s} {'ok' if why is None else 'UNAVAILABLE: ' + why}  {codec.description}")
        return 0

    name = dataset_name(args.dataset, args.limit, args.downscale, args.images)
    out_dir = Path(args.out) if args.out else PACKAGE_DIR / "results" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    anchors = report.load_anchors(Path(args.anchors)) if args.anchors else {}
    reductions = {"limit": args.limit, "images": args.images, "downscale": args.downscale, "resample": "LANCZOS" if args.downscale else None}

    failed_any = False
    if not args.report_only:
        try:
            images = load_images(args.dataset, limit=args.limit, downscale=args.downscale, names=args.images)
        except (FileNotFoundError, OSError) as exc:
            print(f"inr-bench: {exc}", file=sys.stderr)
            return 2
        command = shlex.join(sys.orig_argv) if argv is None else shlex.join(["inr-bench", *argv])
        date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with (out_dir / "COMMAND.txt").open("a") as f:
            f.write(f"{date}  cwd={os.getcwd()}  {command}\n")
        cache = Cache(out_dir / "cache" / "records.jsonl", load=not args.fresh)
        common = {
            "dataset": {"name": name, "path": str(Path(args.dataset).resolve()), "n_images": len(images),
                        "reductions": reductions, "images": [im.describe() for im in images]},
            "environment": _environment(),
            "git": {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain", "--", "codec", "bitstream", "benchmarks"))},
            "seed": args.seed, "command": command, "argv": list(sys.argv[1:] if argv is None else argv),
            "cwd": os.getcwd(), "date": date,
        }
        for cname in names:
            codec = _make_codec(cname, args)
            why = codec.unavailable()
            if why is not None:
                print(f"skipping {cname}: {why}", file=sys.stderr)
                continue
            settings = _settings(codec, args)
            fingerprint = codec.fingerprint()
            records = run_codec(codec, settings, images, cache, fingerprint=fingerprint,
                                retry_errors=args.retry_errors, cached_only=args.cached_only, log=log)
            results, kept, failed = aggregate(records, settings, len(images))
            if failed:
                failed_any = True
                print(f"{cname}: {len(failed)} operating point(s) failed and are left out of results: "
                      + "; ".join(f"{f['setting']}: {f['errors'][:1]}" for f in failed), file=sys.stderr)
            doc = {
                "name": codec.name,
                "description": codec.description,
                "results": results,
                "meta": {**common, "device": codec.device, "codec": codec.name,
                         "setting_name": codec.setting_name, "settings": kept, "failed_points": failed,
                         "codec_settings": codec.config(), "fingerprint": fingerprint,
                         "aggregation": "each results entry is the mean over images of the per-image value; "
                                        "psnr_of_mean_mse is PSNR of the mean per-image MSE",
                         "ms_ssim_scales": sorted({r["ms_ssim_scales"] for r in records if "ms_ssim_scales" in r})},
                "per_image": records,
            }
            (out_dir / f"{codec.name}.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
            if log:
                log(f"wrote {out_dir / (codec.name + '.json')}")

    docs = report.order(report.load_results(out_dir), [ANCHOR, *REGISTRY])
    if args.report_only and docs:  # describe the data the files were measured on, not the arguments
        dataset = next(iter(docs.values()))["meta"].get("dataset", {})
        name, reductions = dataset.get("name", name), dataset.get("reductions", reductions)
    table = report.bd_table(name, docs, anchors, ANCHOR, reductions)
    (out_dir / "bd_rate.md").write_text(table)
    written = [str(out_dir / "bd_rate.md")]
    if not args.no_plot and docs and report.rd_plot(out_dir / "rd_plot.png", name, docs, anchors, reductions):
        written.append(str(out_dir / "rd_plot.png"))
    summary = {"out": str(out_dir), "dataset": name, "written": written,
               "codecs": {n: len(d["results"]["bpp"]) for n, d in docs.items()}}
    print(json.dumps(summary))
    return 1 if failed_any else 0
