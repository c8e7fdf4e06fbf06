"""Bit-flip detection: flip every single bit of a real `.inr` file and decode each result.

    python -m benchmarks.robustness.bitflip [--image codec/samples/kodim23_crop128.png] [--steps 100] [--bpp 0.3]
    python -m benchmarks.robustness.bitflip --file some.inr

Prints "detected D / N bit flips (P %)": a flip is detected when decoding raises InrFormatError.
Anything else (a silent decode, another exception) is listed. Exit status 1 unless all are detected.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

from bitstream import InrFormatError

SAMPLE = Path(__file__).resolve().parents[2] / "codec" / "samples" / "kodim23_crop128.png"


def _message_kind(msg: str) -> str:
    from benchmarks.robustness.fuzz_inr import _message_kind as kind

    return kind(msg)


def flip_all_behind_crc(data: bytes) -> tuple[int, int, int, list[str]]:
    """Every bit flip with the CRC recomputed, so only the checks behind the checksum can catch it.

    Returns (rejected, decoded, total, problems). Flips inside the coded weights are valid data
    (they decode to another image), so this is informative, not expected to be 100 %.
    """
    from benchmarks.robustness.fuzz_inr import fix_crc
    from codec import decode

    rejected = decoded = 0
    problems = []
    total = 8 * (len(data) - 4)
    for bit in range(total):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            decode(fix_crc(bytes(bad)), max_pixels=1 << 20)
            decoded += 1
        except InrFormatError:
            rejected += 1
        except Exception as exc:  # noqa: BLE001
            problems.append(f"bit {bit}: {type(exc).__name__}: {exc}")
    return rejected, decoded, total, problems


def flip_all(data: bytes) -> tuple[int, int, list[str], collections.Counter, float]:
    """(detected, total, problems, rejection kinds, slowest seconds) over every bit of `data`."""
    from codec import decode

    decode(data)  # the original must decode
    detected, problems, kinds, slowest = 0, [], collections.Counter(), 0.0
    total = 8 * len(data)
    for bit in range(total):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        t0 = time.perf_counter()
        try:
            decode(bytes(bad))
            problems.append(f"bit {bit} (byte {bit // 8}): decoded without an error")
        except InrFormatError as exc:
            detected += 1
            kinds[_message_kind(str(exc)).split(" (")[0]] += 1
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            problems.append(f"bit {bit}: {type(exc).__name__}: {exc}")
        slowest = max(slowest, time.perf_counter() - t0)
    return detected, total, problems, kinds, slowest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.robustness.bitflip", description=__doc__.splitlines()[0])
    p.add_argument("--file", type=Path, help="an existing .inr file (else one is encoded from --image)")
    p.add_argument("--image", type=Path, default=SAMPLE)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--bpp", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.file:
        data, source = args.file.read_bytes(), str(args.file)
    else:
        from codec import encode

        data = encode(str(args.image), bpp=args.bpp, steps=args.steps, seed=args.seed, device="cpu")
        source = f"{args.image.name} encoded with bpp={args.bpp}, steps={args.steps}, seed={args.seed}"
    t0 = time.perf_counter()
    detected, total, problems, kinds, slowest = flip_all(data)
    print(f"file: {source}, {len(data)} bytes")
    print(f"detected {detected} / {total} bit flips ({100.0 * detected / total:.2f} %), "
          f"{time.perf_counter() - t0:.1f} s, slowest {slowest * 1000:.1f} ms")
    for kind, n in kinds.most_common():
        print(f"  {n:6d}  {kind}")
    for line in problems[:20]:
        print("NOT DETECTED:", line)
    rejected, decoded, n, other = flip_all_behind_crc(data)
    print(f"with the CRC recomputed (checksum bypassed): {rejected} / {n} rejected by validation, "
          f"{decoded} decoded to a different image, {len(other)} other outcomes")
    for line in other[:20]:
        print("OTHER:", line)
    return 0 if detected == total and not other else 1


if __name__ == "__main__":
    sys.exit(main())
