"""Shape bombs: tiny valid latent-grid files whose context-coded grids have a hostile shape.

    python -m benchmarks.robustness.shape_bombs            # the named cases of issue 28, then a sweep of shapes
    python -m benchmarks.robustness.shape_bombs --named    # only the named cases

A context-coded grid (FORMAT.md §6.1) is decoded row by row (ROW_CONTEXT, ROW_PREDICT) or anti-diagonal by
anti-diagonal (NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT). A grid one pixel thin has one value per row or
anti-diagonal, so a decoder whose cost is per row or diagonal spends its time on loop overhead: the 168-byte
file of issue 28 (65535x1, 12 levels of 8 channels, NEIGHBOUR_CONTEXT with one Laplace class and a 4-byte
payload) took 18 s. These files are valid (CRC and all), so the only acceptable outcome is a decode within
a time proportional to the stored values; `sweep` measures that time per stored value over many shapes.
The fuzzer (fuzz_inr.py, mutation "shape-bomb") draws random ones.
"""
from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import zlib

import numpy as np

import bitstream
from bitstream import HISTOGRAM, LAPLACE, SPARSE_LAPLACE, ZERO, Header, TensorModel, TensorRecord
from bitstream.entropy import CONTEXT_KINDS, MAX_CONTEXT_CLASSES, MIN_CONTEXT_CLASSES, MODEL_NAMES, NEIGHBOUR_CONTEXT, \
    ROW_CONTEXT, ROW_PREDICT

_PLAIN = {"zero": TensorModel(ZERO), "laplace": TensorModel(LAPLACE, 1, scale=1.0),
          "laplace-wide": TensorModel(LAPLACE, 40, scale=4.0),
          "sparse": TensorModel(SPARSE_LAPLACE, 3, scale=1.0, p_zero=32768),
          "histogram": TensorModel(HISTOGRAM, 2, counts=(1, 2, 4, 2, 1))}


def shape_bomb(width: int, height: int, kind: int, *, levels: int = 12, channels: int = 8, n_classes: int = 2,
               classes: tuple[str, ...] = ("laplace",), payload: bytes = b"\0\0\0\0") -> bytes:
    """A valid latent-grid file (1 output channel, a 1x1 synthesis MLP of ZERO tensors) whose grids are
    all coded with context model `kind`: n_classes classes, class k getting model classes[k] (names of
    _PLAIN; the rest ZERO), and a payload of `payload` (whatever it decodes to)."""
    grid = bitstream.LatentGrid(width, height, levels, channels)
    subs = tuple(_PLAIN[classes[k]] if k < len(classes) else _PLAIN["zero"] for k in range(n_classes))
    records = [TensorRecord(1.0, TensorModel(kind, classes=subs)) if len(shape) == 3 else TensorRecord(1.0, TensorModel(ZERO))
               for shape in bitstream.tensor_shapes(bitstream.LATENT, 1, 1, 1, grid)]
    header = Header(width=width, height=height, channels=1, arch=bitstream.LATENT, hidden_width=1, hidden_layers=1,
                    omega0=1.0, init_id=0, tensors=tuple(records), latent_levels=levels, latent_channels=channels)
    from bitstream.header import file_version, pack_header

    head = pack_header(header)
    body = (bitstream.MAGIC + struct.pack("<BH", file_version(header), len(head)) + head
            + struct.pack("<I", len(payload)) + payload)
    return body + struct.pack("<I", zlib.crc32(body))


def named_cases() -> dict[str, bytes]:
    """The files of issue 28: the 168-byte one and its variants."""
    return {
        "thin 65535x1 neighbour-context (168 B)": shape_bomb(65535, 1, NEIGHBOUR_CONTEXT),
        "1x65535 row-context": shape_bomb(1, 65535, ROW_CONTEXT),
        "1x65535 row-predict": shape_bomb(1, 65535, ROW_PREDICT),
        "thin 65535x1 neighbour-context, 16 classes (336 B)": shape_bomb(65535, 1, NEIGHBOUR_CONTEXT, n_classes=16),
    }


#: (width, height) of the sweep: one pixel thin both ways, a few pixels thin (short rows and anti-diagonals,
#: the scalar paths), just past bitstream.entropy.SHORT_STEP (the numpy paths at their most overhead), square
SWEEP_SHAPES = ((65535, 1), (1, 65535), (65535, 2), (2, 65535), (65535, 5), (5, 65535), (20000, 12), (12, 20000),
                (20000, 13), (13, 20000), (2000, 100), (100, 2000), (1000, 1000))
SWEEP_CLASSES = (("laplace",), ("sparse",), ("histogram",), ("laplace-wide",) * 16, ("sparse", "laplace", "histogram") * 5)


def stored_values(data: bytes) -> int:
    header = bitstream.read_header(data)
    return sum(int(np.prod(s)) for s in header.tensor_shapes())


def time_decode(data: bytes) -> tuple[float, str]:
    """(CPU seconds, outcome) of the full decoder at 1x1 output (the entropy decoding is the work here)."""
    from codec.decoding import decode_array

    t0 = time.process_time()
    try:
        decode_array(data, size=(1, 1), backend="numpy")
        outcome = "decoded"
    except bitstream.InrFormatError as exc:
        outcome = f"InrFormatError: {exc}"
    return time.process_time() - t0, outcome


def _channels_for(width: int, height: int, levels: int, budget: int) -> int:
    per_channel = bitstream.LatentGrid(width, height, levels, 1).values()
    return max(1, min(8, budget // per_channel))


def sweep(budget: int = 600_000, levels: int = 12) -> list[dict]:
    """Decode time per stored value for every kind x SWEEP_SHAPES x SWEEP_CLASSES, with as many channels
    (1..8) as keep each file near `budget` values."""
    rows = []
    for kind in CONTEXT_KINDS:
        for width, height in SWEEP_SHAPES:
            for classes in SWEEP_CLASSES:
                channels = _channels_for(width, height, levels, budget)
                data = shape_bomb(width, height, kind, levels=levels, channels=channels,
                                  n_classes=max(MIN_CONTEXT_CLASSES, len(classes)), classes=classes)
                seconds, outcome = time_decode(data)
                values = stored_values(data)
                rows.append({"kind": MODEL_NAMES[kind], "shape": f"{width}x{height}", "channels": channels,
                             "classes": "+".join(sorted(set(classes))) + f" ({max(2, len(classes))})",
                             "values": values, "seconds": seconds, "us_per_value": 1e6 * seconds / values,
                             "outcome": outcome.split(":")[0]})
    return rows


def random_shape_bomb(rnd: random.Random) -> bytes:
    """A random shape bomb for the fuzzer: a thin or thick grid of every context kind, random classes."""
    thin = rnd.choice((1, 1, 2, 3, rnd.randint(1, 40)))
    long = min(rnd.choice((65535, rnd.randint(1, 65535))), max(1, (1 << 15) // thin))  # at most ~2**16 values in all
    width, height = (long, thin) if rnd.random() < 0.5 else (thin, long)
    n_classes = rnd.randint(MIN_CONTEXT_CLASSES, MAX_CONTEXT_CLASSES)
    names = [rnd.choice(tuple(_PLAIN)) for _ in range(n_classes)]
    if all(n == "zero" for n in names):
        names[0] = "laplace"
    levels = rnd.randint(1, bitstream.architectures.MAX_LATENT_LEVELS)
    per_channel = bitstream.LatentGrid(width, height, levels, 1).values()
    channels = max(1, min(bitstream.architectures.MAX_LATENT_CHANNELS, (1 << 16) // per_channel))
    payload = bytes(rnd.randrange(256) for _ in range(4 * rnd.randint(1, 4)))
    return shape_bomb(width, height, rnd.choice(CONTEXT_KINDS), levels=levels, channels=channels,
                      n_classes=n_classes, classes=tuple(names), payload=payload)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.robustness.shape_bombs", description=__doc__.splitlines()[0])
    p.add_argument("--named", action="store_true", help="only the named cases of issue 28")
    p.add_argument("--budget", type=int, default=600_000, help="about this many stored values per sweep file")
    args = p.parse_args(argv)
    print("| file | bytes | stored values | CPU s | outcome |\n|---|---:|---:|---:|---|")
    for name, data in named_cases().items():
        seconds, outcome = time_decode(data)
        print(f"| {name} | {len(data)} | {stored_values(data):,} | {seconds:.3f} | {outcome} |", flush=True)
    if args.named:
        return 0
    rows = sweep(args.budget)
    print("\n| kind | shape | channels | classes | values | CPU s | us/value | outcome |\n|---|---|---:|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['shape']} | {r['channels']} | {r['classes']} | {r['values']:,} | {r['seconds']:.3f} "
              f"| {r['us_per_value']:.3f} | {r['outcome']} |", flush=True)
    worst = max(rows, key=lambda r: r["us_per_value"])
    print(f"\nworst: {worst['us_per_value']:.3f} us per stored value ({worst['kind']} {worst['shape']}, {worst['classes']}); "
          f"{len(rows)} files, {sum(r['seconds'] for r in rows):.1f} CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
