"""Decode time of the numpy receiver against the torch decoder, in one run, and their pixel agreement.

    python -m benchmarks.probes.receiver_speed FILE.inr [FILE.inr ...] [--sizes 768x512 3840x2160]
        [--repeats 3] [--out DIR]

For every file and output size, decodes with backend "numpy" and "torch" (CPU), alternating, and
keeps the best of --repeats wall-clock and CPU (process) times of `codec.decoder.decode_array`
(entropy decoding and rendering; not Python start-up or the PNG). On a shared machine the CPU time
(summed over threads) is the steadier measure; both are recorded. Pixels: the largest absolute difference between the two
decoders and the share of differing values. Writes receiver_speed.json and receiver_speed.md to --out
with the command, commit, date and device.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bitstream import read_header


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "codec", "bitstream"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + (" (+ uncommitted changes in codec/ or bitstream/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(data: bytes, size: tuple[int, int], repeats: int) -> dict:
    from codec.decoding.decoder import decode_array, multiply_adds_per_pixel

    times = {"numpy": [], "torch": []}
    cpu = {"numpy": [], "torch": []}
    pixels = {}
    for _ in range(repeats):
        for backend in ("numpy", "torch"):
            t0, c0 = time.perf_counter(), time.process_time()
            pixels[backend] = decode_array(data, size=size, backend=backend, device="cpu")
            times[backend].append(time.perf_counter() - t0)
            cpu[backend].append(time.process_time() - c0)
    diff = np.abs(pixels["numpy"].astype(np.int16) - pixels["torch"].astype(np.int16))
    header = read_header(data)
    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    return {
        "size": f"{size[0]}x{size[1]}", "network": f"{header.hidden_layers}x{header.hidden_width}",
        "multiply_adds": multiply_adds_per_pixel(header) * size[0] * size[1],
        "numpy_s": best["numpy"], "torch_s": best["torch"], "ratio_numpy_over_torch": best["numpy"] / best["torch"],
        "numpy_cpu_s": best_cpu["numpy"], "torch_cpu_s": best_cpu["torch"],
        "cpu_ratio_numpy_over_torch": best_cpu["numpy"] / best_cpu["torch"],
        "max_abs_diff": int(diff.max()), "differing_values_percent": 100.0 * float((diff > 0).mean()),
        "all_times": times, "all_cpu_times": cpu,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probes.receiver_speed", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--sizes", nargs="+", type=_size, default=[(768, 512), (3840, 2160)])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="folder for receiver_speed.json / .md")
    args = p.parse_args(argv)
    import torch

    records = []
    for path in args.files:
        data = path.read_bytes()
        for size in args.sizes:
            rec = {"file": path.name, "bytes": len(data), **measure(data, size, args.repeats)}
            records.append(rec)
            print(f"{rec['file']} {rec['size']}: numpy {rec['numpy_s']:.2f} s ({rec['numpy_cpu_s']:.2f} s CPU), "
                  f"torch {rec['torch_s']:.2f} s ({rec['torch_cpu_s']:.2f} s CPU), CPU-time ratio "
                  f"{rec['cpu_ratio_numpy_over_torch']:.2f}; max diff {rec['max_abs_diff']}, "
                  f"{rec['differing_values_percent']:.4f} % of values differ", flush=True)
    meta = {
        "command": "python -m benchmarks.probes.receiver_speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": _commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), no GPU; "
                  f"load average {os.getloadavg()[0]:.1f} at the end",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
        "python": platform.python_version(), "repeats": args.repeats,
    }
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "receiver_speed.json").write_text(json.dumps({"meta": meta, "results": records}, indent=2) + "\n")
        lines = ["# Receiver decode time: numpy (no torch) vs torch, CPU", "",
                 f"Command: `{meta['command']}`  ", f"Commit: `{meta['commit']}`, date {meta['date']}  ",
                 f"Device: {meta['device']}; torch {meta['torch']} ({meta['torch_threads']} threads), numpy {meta['numpy']}, "
                 f"best of {args.repeats}.", "",
                 "| file | output | network | multiply-adds | numpy s (CPU s) | torch s (CPU s) | numpy / torch, CPU time | max abs diff | values differing |",
                 "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in records:
            lines.append(f"| {r['file']} ({r['bytes']} B) | {r['size']} | {r['network']} | {r['multiply_adds']:.3g} | "
                         f"{r['numpy_s']:.2f} ({r['numpy_cpu_s']:.2f}) | {r['torch_s']:.2f} ({r['torch_cpu_s']:.2f}) | "
                         f"{r['cpu_ratio_numpy_over_torch']:.2f} | "
                         f"{r['max_abs_diff']} | {r['differing_values_percent']:.4f} % |")
        (args.out / "receiver_speed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
