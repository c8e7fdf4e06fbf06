"""Mutation fuzzing of the `.inr` decoder.

    python -m benchmarks.robustness.fuzz_inr --cases 100000 --seed 1

Every case mutates a valid file (bit flips, byte sets, truncation, insertion, deletion, splicing,
overwriting with boundary values; half of them with the CRC recomputed, some with the section
lengths recomputed too, so the header parser and the entropy decoder behind the checksum are
exercised) and decodes it. "work-bomb" cases are valid files with all-zero weights (a few dozen
bytes) declaring random network and image sizes up to the format's maxima; they are decoded with
the default parameter and pixel limits and a small multiply-add limit, so only the work limit
stands between them and a decode of minutes or hours. "shape-bomb" cases (shape_bombs.py) are valid
latent-grid files whose context-coded grids (all four kinds, random class models) are one or a few pixels
thin, decoded with the default limits: only the entropy decoder's cost per stored value stands between them
and a decode of minutes (issue 28); the report gives the worst CPU time per stored value among them. The
only acceptable outcomes are a decoded image or InrFormatError, each within a time bound. Exit status 1 if
any case did anything else.

The same loop runs in the test suite (tests/test_fuzz_inr.py) with fewer cases.
"""
from __future__ import annotations

import argparse
import collections
import random
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

import bitstream
from bitstream import HISTOGRAM, LAPLACE, ZERO, Header, InrFormatError, TensorModel, TensorRecord

try:
    from bitstream.entropy import SPARSE_LAPLACE
except ImportError:  # a format version without the sparse model
    SPARSE_LAPLACE = None

#: decode limits used while fuzzing: small, so that a mutation that stays valid renders quickly
FUZZ_MAX_PARAMETERS = 1 << 15
FUZZ_MAX_PIXELS = 1 << 12
#: multiply-add limit for the work-bomb cases (default parameter and pixel limits): a few ms each
FUZZ_MAX_WORK = 1_000_000
_PREFIX_LEN = 7  # magic (4), version (1), header length (2)
_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def crafted_file(rng: np.random.Generator, *, channels: int, hidden_width: int, hidden_layers: int,
                 width: int, height: int, kinds: tuple[int, ...], arch: int = bitstream.SIREN,
                 latent_levels: int = 3, latent_channels: int = 2, latent_sampling: int = bitstream.BILINEAR) -> bytes:
    """A valid file of family `arch` built with the format writer, using the given model kinds in turn
    (`latent_levels`, `latent_channels`, `latent_sampling`: the grids of a family that has them)."""
    has_grid = bitstream.ARCHITECTURES[arch].has_grid
    grid_fields = dict(latent_levels=latent_levels, latent_channels=latent_channels,
                       latent_sampling=latent_sampling) if has_grid else {}
    grid = bitstream.LatentGrid(width, height, latent_levels, latent_channels, latent_sampling) if has_grid else None
    shapes = bitstream.tensor_shapes(arch, hidden_width, hidden_layers, channels, grid)
    symbols, records = [], []
    for i, shape in enumerate(shapes):
        kind = kinds[i % len(kinds)]
        if kind == ZERO:
            sym = np.zeros(shape, dtype=np.int32)
            model = TensorModel(ZERO)
        else:
            max_abs = 7 if kind == HISTOGRAM else 40
            if kind == SPARSE_LAPLACE:
                max_abs = 5
            sym = np.clip(np.round(rng.laplace(0, max_abs / 4, size=shape)), -max_abs, max_abs).astype(np.int32)
            sym.flat[0] = max_abs
            if kind == SPARSE_LAPLACE:
                sym[rng.random(shape) < 0.4] = 0
                model = TensorModel(SPARSE_LAPLACE, max_abs, scale=1.5, p_zero=int(0.45 * 65536))
            elif kind == HISTOGRAM:
                counts = np.bincount(sym.reshape(-1) + max_abs, minlength=2 * max_abs + 1)
                model = TensorModel(HISTOGRAM, max_abs, counts=tuple(int(c) for c in counts))
            else:
                model = TensorModel(LAPLACE, max_abs, scale=float(np.float16(max_abs / 4)))
        symbols.append(sym)
        records.append(TensorRecord(float(np.float16(0.01 * (i + 1))), model))
    omega0 = 30.0 if bitstream.ARCHITECTURES[arch].uses_omega0 else 1.0
    header = Header(width=width, height=height, channels=channels, arch=arch, hidden_width=hidden_width,
                    hidden_layers=hidden_layers, omega0=omega0, init_id=0, tensors=tuple(records), **grid_fields)
    return bitstream.write_file(header, symbols)


def work_bomb(rnd: random.Random) -> bytes:
    """A valid file (CRC and all) with all-zero weights, so no payload, declaring random sizes.

    Sizes are drawn log-uniformly up to the format's maxima (hidden width 1024, 32 layers, 65535 px
    sides): a 4-layer width-1024 network on an 8192x8192 image is 59 bytes.
    """
    from bitstream.header import MAX_HIDDEN_LAYERS, MAX_HIDDEN_WIDTH, MAX_SIDE, pack_header

    def log_uniform(high: int) -> int:
        return max(1, min(high, int(round(2 ** rnd.uniform(0, np.log2(high))))))

    layers = log_uniform(MAX_HIDDEN_LAYERS)
    width, channels, arch = log_uniform(MAX_HIDDEN_WIDTH), rnd.choice((1, 3)), rnd.choice(sorted(bitstream.ARCHITECTURES))
    side_w, side_h = log_uniform(MAX_SIDE), log_uniform(MAX_SIDE)
    grid_fields, grid = {}, None
    if bitstream.ARCHITECTURES[arch].has_grid:  # latent grids as large as the declared image
        from bitstream.architectures import MAX_LATENT_CHANNELS, MAX_LATENT_LEVELS

        grid_fields = dict(latent_levels=rnd.randint(1, MAX_LATENT_LEVELS), latent_channels=rnd.randint(1, MAX_LATENT_CHANNELS),
                           latent_sampling=rnd.choice((bitstream.BILINEAR, bitstream.BICUBIC)))
        grid = bitstream.LatentGrid(side_w, side_h, *grid_fields.values())
    n_tensors = len(bitstream.tensor_shapes(arch, width, layers, channels, grid))
    header = Header(width=side_w, height=side_h, channels=channels,
                    arch=arch, hidden_width=width, hidden_layers=layers,
                    omega0=30.0 if bitstream.ARCHITECTURES[arch].uses_omega0 else 1.0, init_id=0,
                    tensors=tuple(TensorRecord(float(np.float16(0.01)), TensorModel(ZERO)) for _ in range(n_tensors)),
                    **grid_fields)
    head = pack_header(header)
    version = bitstream.header.file_version(header)
    body = bitstream.MAGIC + struct.pack("<BH", version, len(head)) + head + struct.pack("<I", 0)
    return body + struct.pack("<I", zlib.crc32(body))


def corpus(real: bool = True) -> list[bytes]:
    """Seed files: crafted ones covering every model kind, and optionally one made by the encoder."""
    rng = np.random.default_rng(1234)
    files = [
        crafted_file(rng, channels=3, hidden_width=12, hidden_layers=2, width=20, height=12, kinds=(LAPLACE, HISTOGRAM, ZERO)),
        crafted_file(rng, channels=1, hidden_width=6, hidden_layers=3, width=9, height=31, kinds=(HISTOGRAM, ZERO, LAPLACE)),
        crafted_file(rng, channels=3, hidden_width=4, hidden_layers=1, width=1, height=1, kinds=(ZERO,)),
    ]
    if SPARSE_LAPLACE is not None:
        files.append(crafted_file(rng, channels=3, hidden_width=10, hidden_layers=2, width=15, height=8,
                                  kinds=(SPARSE_LAPLACE, LAPLACE, SPARSE_LAPLACE, HISTOGRAM)))
    files.append(crafted_file(rng, channels=3, hidden_width=9, hidden_layers=3, width=14, height=10,
                              kinds=(LAPLACE, HISTOGRAM, ZERO, LAPLACE), arch=bitstream.POLY))  # the Poly-INR family
    files.append(crafted_file(rng, channels=3, hidden_width=6, hidden_layers=2, width=13, height=9,
                              kinds=(SPARSE_LAPLACE or LAPLACE, HISTOGRAM, LAPLACE), arch=bitstream.LATENT))  # latent grids
    files.append(crafted_file(rng, channels=1, hidden_width=5, hidden_layers=1, width=11, height=7, kinds=(LAPLACE, HISTOGRAM),
                              arch=bitstream.LATENT, latent_sampling=bitstream.BICUBIC))  # bicubic grids (version 4)
    files.append(row_context_file(rng))
    files.append(row_context_file(rng, predict=True))
    files.append(row_context_file(rng, kind="neighbour-context"))
    files.append(row_context_file(rng, kind="neighbour-predict"))
    if real:
        files += [real_file(), real_file(arch="poly"), real_file(arch="latent")]
    return files


def row_context_file(rng: np.random.Generator, *, predict: bool = False, kind: str | None = None) -> bytes:
    """A latent-grid file whose two-channel grid is coded with a ROW_CONTEXT model (format version 2),
    with `predict` a ROW_PREDICT model (format version 3), or with the model `kind` names
    ("neighbour-context" or "neighbour-predict", format version 5)."""
    from bitstream.entropy import MODEL_NAMES, ROW_CONTEXT, ROW_PREDICT, _context_model

    kind_id = {name: k for k, name in MODEL_NAMES.items()}[kind] if kind else (ROW_PREDICT if predict else ROW_CONTEXT)
    predict = predict or kind == "neighbour-predict"
    active = rng.random((2, 1, 24)) < 0.4  # columns busy in every row: the row above predicts them
    grid = np.where(active, np.clip(np.round(rng.laplace(0, 3, (2, 16, 24))), -9, 9), 0).astype(np.int32)
    if predict:  # a smooth grid: each row the row above plus a small step
        grid = np.clip(np.cumsum(rng.integers(-1, 2, (2, 16, 24)), axis=1), -9, 9).astype(np.int32)
    context = _context_model(grid, 5, None, kind_id)[0]
    assert context.kind == kind_id
    shapes = bitstream.tensor_shapes(bitstream.LATENT, 5, 1, 3, bitstream.LatentGrid(24, 16, 1, 2))
    symbols = [grid] + [np.clip(np.round(rng.laplace(0, 4, s)), -20, 20).astype(np.int32) for s in shapes[1:]]
    records = [TensorRecord(1.0, context)] + [TensorRecord(float(np.float16(0.02)), TensorModel(LAPLACE, 20, scale=4.0))
                                              for _ in shapes[1:]]
    header = Header(width=24, height=16, channels=3, arch=bitstream.LATENT, hidden_width=5, hidden_layers=1,
                    omega0=1.0, init_id=0, tensors=tuple(records), latent_levels=1, latent_channels=2)
    return bitstream.write_file(header, symbols)


def real_file(hidden_width: int = 16, steps: int = 30, arch: str = "siren") -> bytes:
    """A small file made by the real encoder (about a second on a CPU)."""
    from codec.config import EncoderConfig, MlpSettings
    from codec.encoding import encode_pixels

    y, x = np.mgrid[0:12, 0:20]
    arr = np.stack([x * 12, y * 20, (x + y) * 7], -1).astype(np.uint8)
    if arch == "latent":  # the family sizes its own network
        cfg = EncoderConfig(mlp=MlpSettings(bits=8), steps=steps, device="cpu", arch=arch)
    else:
        cfg = EncoderConfig(mlp=MlpSettings(hidden_width=hidden_width, hidden_layers=2, bits=8), steps=steps, device="cpu",
                            arch=arch)
    return encode_pixels(arr, cfg).data


def fix_crc(data: bytes) -> bytes:
    if len(data) < 4:
        return data
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def fix_lengths(data: bytes, head_len: int) -> bytes:
    """Rewrite the header and payload length fields to match a header of `head_len` bytes."""
    if len(data) < _PREFIX_LEN + head_len + 8:
        return data
    out = bytearray(data)
    struct.pack_into("<H", out, 5, min(head_len, 0xFFFF))
    pay_at = _PREFIX_LEN + head_len
    struct.pack_into("<I", out, pay_at, len(out) - pay_at - 8)
    return bytes(out)


def _header_len(data: bytes) -> int:
    return struct.unpack_from("<H", data, 5)[0] if len(data) >= 7 else 0


def mutate(rnd: random.Random, files: list[bytes]) -> tuple[str, bytes]:
    """One mutation of a random corpus file; returns (mutation name, bytes)."""
    data = bytearray(rnd.choice(files))
    n = len(data)
    op = rnd.choice(("bitflip", "byteset", "truncate", "insert", "delete", "splice", "overwrite",
                     "header-edit", "payload-edit", "work-bomb", "shape-bomb"))
    if op == "work-bomb":
        return op, work_bomb(rnd)
    if op == "shape-bomb":
        from .shape_bombs import random_shape_bomb

        return op, random_shape_bomb(rnd)
    if op == "bitflip":
        for _ in range(rnd.choice((1, 1, 1, 2, 3, 8))):
            i = rnd.randrange(n * 8)
            data[i // 8] ^= 1 << (i % 8)
    elif op == "byteset":
        for _ in range(rnd.choice((1, 1, 2, 4))):
            data[rnd.randrange(n)] = rnd.choice((0, 0xFF, 0x7F, 0x80, rnd.randrange(256)))
    elif op == "truncate":
        data = data[: rnd.randrange(n)]
    elif op == "insert":
        i = rnd.randrange(n + 1)
        data[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 2, 4, 17, 100))))
    elif op == "delete":
        i = rnd.randrange(n)
        del data[i : i + rnd.choice((1, 2, 4, 17, 100))]
    elif op == "splice":
        other = rnd.choice(files)
        data = data[: rnd.randrange(n + 1)] + other[rnd.randrange(len(other) + 1) :]
    elif op == "overwrite":
        value = rnd.choice(_INTERESTING)
        fmt = rnd.choice(("<B", "<H", "<I", "<e", "<f"))
        if fmt in ("<e", "<f"):
            value = rnd.choice((0.0, -1.0, float("inf"), float("nan"), 65504.0, 1e-8))
        size = struct.calcsize(fmt)
        if n >= size:
            try:
                struct.pack_into(fmt, data, rnd.randrange(n - size + 1), value)
            except (struct.error, OverflowError):
                struct.pack_into("<B", data, rnd.randrange(n), value & 0xFF if isinstance(value, int) else 0)
    else:  # structure-aware: edit inside the header or the payload, then make the lengths agree again
        head_len = _header_len(data)
        lo, hi = (_PREFIX_LEN, _PREFIX_LEN + head_len) if op == "header-edit" else (_PREFIX_LEN + head_len + 4, n - 4)
        if hi > lo:
            i = rnd.randrange(lo, hi)
            how = rnd.randrange(3)
            if how == 0:
                data[i] = rnd.randrange(256)
            elif how == 1:
                k = rnd.choice((1, 2, 3, 8))
                data[i:i] = bytes(rnd.randrange(256) for _ in range(k))
                head_len += k if op == "header-edit" else 0
            else:
                k = min(rnd.choice((1, 2, 4)), hi - i)
                del data[i : i + k]
                head_len -= k if op == "header-edit" else 0
        data = bytearray(fix_lengths(bytes(data), head_len))
        return op, fix_crc(bytes(data))
    if rnd.random() < 0.5:
        return op + "+crc", fix_crc(bytes(data))
    return op, bytes(data)


@dataclass
class FuzzReport:
    cases: int = 0
    decoded: int = 0
    rejected: int = 0
    failures: list = field(default_factory=list)  # (case, mutation, exception repr, hex of the input)
    max_seconds: float = 0.0
    total_seconds: float = 0.0
    worst_per_value: float = 0.0  # shape-bomb cases: the most CPU seconds per stored value
    worst_per_value_case: str = ""
    messages: collections.Counter = field(default_factory=collections.Counter)
    mutations: collections.Counter = field(default_factory=collections.Counter)

    def summary(self) -> str:
        lines = [f"cases {self.cases}: decoded {self.decoded}, InrFormatError {self.rejected}, "
                 f"other outcomes {len(self.failures)}; slowest case {self.max_seconds * 1000:.1f} ms, "
                 f"total {self.total_seconds:.1f} s"]
        lines.append("mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(self.mutations.items())))
        if self.worst_per_value:
            lines.append(f"shape bombs: worst {self.worst_per_value * 1e6:.2f} us of CPU per stored value "
                         f"({self.worst_per_value_case})")
        lines.append("most common rejections:")
        lines += [f"  {v:7d}  {k}" for k, v in self.messages.most_common(15)]
        for case, op, err, blob in self.failures[:10]:
            lines.append(f"FAILURE case {case} ({op}): {err} input={blob}")
        return "\n".join(lines)


def _message_kind(msg: str) -> str:
    """A message with its numbers removed, to count rejections by kind."""
    out, digits = [], False
    for ch in msg:
        if ch.isdigit():
            if not digits:
                out.append("N")
            digits = True
        else:
            out.append(ch)
            digits = False
    return "".join(out)[:90]


def decode_case(data: bytes, op: str = ""):
    """Decode with the fuzzing limits (for a work bomb: default parameter and pixel limits, small work)."""
    from codec.decoding.decoder import DecodeLimits, decode_array

    if op == "work-bomb":
        limits = DecodeLimits(max_work=FUZZ_MAX_WORK)
    elif op == "shape-bomb":  # default limits; a small output: the entropy decoding is the work
        return decode_array(data, device="cpu", size=(4, 4), backend="numpy")
    else:
        limits = DecodeLimits(max_parameters=FUZZ_MAX_PARAMETERS, max_pixels=FUZZ_MAX_PIXELS)
    return decode_array(data, device="cpu", limits=limits)


def _note_per_value(report: FuzzReport, case: int, data: bytes, cpu_seconds: float) -> None:
    header = bitstream.read_header(data)
    values = sum(int(np.prod(s)) for s in header.tensor_shapes())
    if cpu_seconds / values > report.worst_per_value:
        report.worst_per_value = cpu_seconds / values
        report.worst_per_value_case = (f"case {case}: {header.width}x{header.height}, {header.latent_levels} levels x "
                                       f"{header.latent_channels} channels, {values} values, {cpu_seconds:.3f} s")


def run(cases: int, seed: int, files: list[bytes] | None = None, *, time_limit: float = 1.0,
        progress: bool = False) -> FuzzReport:
    """Fuzz `cases` mutations; anything but a decode or InrFormatError within `time_limit` s is a failure."""
    import torch

    torch.set_num_threads(1)
    files = files if files is not None else corpus()
    for f in files:  # the seeds themselves must decode
        decode_case(f)
    rnd = random.Random(seed)
    report = FuzzReport()
    t_start = time.perf_counter()
    for case in range(cases):
        op, data = mutate(rnd, files)
        report.mutations[op] += 1
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        error = None
        try:
            decode_case(data, op)
            report.decoded += 1
        except InrFormatError as exc:
            report.rejected += 1
            msg = str(exc)
            if not msg or "\n" in msg:
                error = f"InrFormatError message is not one line: {msg!r}"
            report.messages[_message_kind(msg)] += 1
        except BaseException as exc:  # noqa: BLE001 - any other outcome is what we are looking for
            if isinstance(exc, KeyboardInterrupt):
                raise
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - t0
        if op == "shape-bomb":  # decoded or refused (often only at the end: unused payload), the work is done
            _note_per_value(report, case, data, time.process_time() - cpu0)
        report.max_seconds = max(report.max_seconds, elapsed)
        if elapsed > time_limit and error is None:
            error = f"took {elapsed:.2f} s"
        if error is not None:
            report.failures.append((case, op, error, data.hex() if len(data) < 4096 else f"{len(data)} bytes"))
        report.cases += 1
        if progress and (case + 1) % 10000 == 0:
            print(f"{case + 1} cases, {len(report.failures)} failures, {time.perf_counter() - t_start:.0f} s",
                  file=sys.stderr, flush=True)
    report.total_seconds = time.perf_counter() - t_start
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.robustness.fuzz_inr", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=1.0, help="seconds a single case may take")
    p.add_argument("--no-real", action="store_true", help="do not add a file made by the encoder to the corpus")
    args = p.parse_args(argv)
    files = corpus(real=not args.no_real)
    print(f"fuzzing {args.cases} cases, seed {args.seed}, corpus of {len(files)} files "
          f"({', '.join(str(len(f)) for f in files)} bytes), limits: {FUZZ_MAX_PARAMETERS} parameters, "
          f"{FUZZ_MAX_PIXELS} output pixels (work bombs: default limits, {FUZZ_MAX_WORK} multiply-adds)", flush=True)
    report = run(args.cases, args.seed, files, time_limit=args.time_limit, progress=True)
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
