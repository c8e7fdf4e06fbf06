"""Command-line entry points: inr-encode, inr-decode, inr-info.

Exit codes: 0 success, 1 failure (bad input, bad file, I/O), 2 usage error, 130 interrupted, 141 stdout
closed early. A user error is one line on stderr; output files are written atomically. `-` as an input or
output means standard input or output (binary); the output is written to stdout in one piece after the
work has succeeded, and a terminal is refused as binary stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from bitstream import MAGIC, InrFormatError

from .config import (ARCH_CHOICES, DEFAULT_EFFORT, DEFAULT_PRESET, DEFAULT_STEPS, EFFORT_FLOOR_SECONDS, EFFORT_LEVELS,
                     EFFORT_SECONDS_PER_MEGAPIXEL, INIT_CHOICES,
                     LATENT_SAMPLING_CHOICES, OPTIONS, PRESETS, EncoderConfig)
from .decoding import (BACKENDS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_WORK, RENDERS, DecodeLimits, array_to_image, decode_array,
                       read_checked)
from .devices import DEVICE_CHOICES
from .errors import ImageInputError, OptionError
from .imageio import check_writable, image_bytes, load_pixels, write_atomic

TORCH_NEEDED = "encoding needs torch, which is not installed (pip install torch==2.13.0); decoding works without it"

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  #: 128 + SIGPIPE, what a Unix tool killed by a closed pipe returns
MAX_INPUT_FILE_BYTES = 1 << 30
STDIO = "-"  #: an input or output of this name is standard input or standard output (binary)


class _StdoutClosed(Exception):
    """Binary output to stdout failed because the reader went away (a closed pipe)."""


def _refuse_terminal_stdout(what: str) -> None:
    """Binary output and a terminal as stdout: refuse before any work (as cwebp and gzip do)."""
    try:
        tty = os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout is not a real file (embedded use, tests)
        tty = False
    if tty:
        raise OptionError(f"refusing to write {what} to a terminal: redirect stdout to a file or a pipe, "
                          "or give a file name instead of -")


def _write_stdout(data: bytes) -> None:
    """All of `data` to the binary stdout at once; _StdoutClosed if the pipe was closed."""
    out = getattr(sys.stdout, "buffer", sys.stdout)
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        raise _StdoutClosed(f"stdout was closed before the {len(data)}-byte output was written") from None


def _read_stdin(limit: int) -> bytes:
    """Standard input (binary), at most `limit` bytes (one more is read to tell that it is longer)."""
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    if stream is None:
        raise OSError("-: there is no standard input")
    return stream.read(limit + 1)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line and exits 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _number(cast, valid, expected: str):
    """An argparse type: `cast(text)` that must satisfy `valid`, else 'expected ..., got ...'."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
_fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _count(text: str) -> int:
    """A positive integer, also written like 5e11."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer such as 5e11, got {text!r}") from None
        if not (math.isfinite(number) and number == int(number)):
            raise argparse.ArgumentTypeError(f"expected a positive integer such as 5e11, got {text!r}") from None
        value = int(number)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer such as 5e11, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return w, h


def _one_line(exc) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not -(1 << 63) <= value < (1 << 64):
        raise argparse.ArgumentTypeError(f"seed must fit in 64 bits, got {text!r}")
    return value


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout is not a real file (embedded use, tests)
        pass


def _run(body, prog: str) -> int:
    """Run a command body, turning user errors into one line on stderr and an exit code."""
    try:
        return body()
    except (ImageInputError, InrFormatError) as exc:  # before OptionError: a file over a limit is both
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAIL
    except OptionError as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # stdout closed early (`inr-info f.inr | head`): stop quietly, as Unix tools do
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except _StdoutClosed as exc:  # binary output lost: say so in one line (nothing partial was meant to go)
        _silence_stdout()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        text = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"{prog}: error: {_one_line(text)}", file=sys.stderr)
        return EXIT_FAIL
    except MemoryError:
        print(f"{prog}: error: out of memory", file=sys.stderr)
        return EXIT_FAIL
    except ModuleNotFoundError as exc:  # a receiver's install (numpy only) asked to encode
        if exc.name != "torch":
            raise
        print(f"{prog}: error: {TORCH_NEEDED}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _check_output(inp: Path | None, out: Path, force: bool) -> None:
    """`out` may be written (inp: the input file, None for standard input)."""
    if out.is_dir():
        raise OSError(f"{out}: is a directory, not a file to write")
    if inp is not None and out.exists() and inp.exists() and os.path.samefile(inp, out):
        raise OSError(f"{out}: output would overwrite the input")
    if out.exists() and not force:
        raise OSError(f"{out}: already exists (pass --force to overwrite)")
    check_writable(out)


def _read_inr(path: Path) -> bytes:
    """Read an .inr file: only as many bytes as its own length fields declare (plus a little, so
    trailing junk is reported), never more than MAX_INPUT_FILE_BYTES, also from a pipe or a device;
    `-` is standard input."""
    if str(path) == STDIO:
        stream = getattr(sys.stdin, "buffer", sys.stdin)
        if stream is None:
            raise OSError("-: there is no standard input")
        return _read_inr_from(stream, "-")
    if not path.exists():
        raise OSError(f"{path}: no such file")
    if path.is_dir():
        raise OSError(f"{path}: is a directory")
    if path.is_file() and path.stat().st_size > MAX_INPUT_FILE_BYTES:
        raise InrFormatError(f"{path}: {path.stat().st_size} bytes is far larger than any .inr file")
    with path.open("rb") as fh:
        return _read_inr_from(fh, str(path))


def _read_inr_from(fh, path: str) -> bytes:
    """The bounded read of _read_inr from an open binary stream (a file, a pipe, stdin)."""
    data = fh.read(7)  # magic, version, header length
    if len(data) < 7 or data[:4] != MAGIC:
        return data  # the decoder names the problem (empty, truncated, wrong magic)
    head_len = int.from_bytes(data[5:7], "little")
    data += fh.read(head_len + 4)
    if len(data) < 7 + head_len + 4:
        return data
    pay_len = int.from_bytes(data[-4:], "little")
    total = len(data) + pay_len + 4
    if total > MAX_INPUT_FILE_BYTES:
        raise InrFormatError(f"{path}: sections declare {total} bytes, far larger than any .inr file")
    data += fh.read(pay_len + 4)
    return data + fh.read(1 << 16)  # anything after the checksum is reported by the decoder


def encode_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="inr-encode", usage=ENCODE_USAGE, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                description="Compress an image into an .inr file (a quantized coordinate network), or every image of a folder "
                            "into a folder of .inr files (see the README's 'Folders of images').")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="INPUT OUTPUT (an image, the .inr file to write; - for standard input or output); "
                        "FOLDER OUT_FOLDER; or images and folders with -o OUT_FOLDER")
    p.add_argument("-o", "--output-dir", metavar="OUT_FOLDER",
                   help="encode every PATH (images, and the images directly inside folders) into this folder")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--bpp", type=_positive_float, help="target bits per pixel; the file is at most this")
    rate.add_argument("--preset", choices=list(PRESETS), help=f"named operating point ({DEFAULT_PRESET} if no --bpp); "
                      + ", ".join(f"{k}={v} bpp" for k, v in PRESETS.items()))
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="optimisation steps over all phases (default: planned from the time budget on the CPU, "
                        f"{DEFAULT_STEPS} on a GPU at the default effort)")
    p.add_argument("--effort", type=int, choices=EFFORT_LEVELS, default=None, metavar="1..9",
                   help=f"encoder effort, higher is slower and better (default {DEFAULT_EFFORT}): on the CPU a time budget of "
                        + ", ".join(f"{e}: max({f:g} s, {m:g} s/MP)" for e, f, m in
                                    zip(EFFORT_LEVELS, EFFORT_FLOOR_SECONDS, EFFORT_SECONDS_PER_MEGAPIXEL))
                        + f"; on a GPU {DEFAULT_STEPS} steps at {DEFAULT_EFFORT}, doubled per level above, halved below")
    p.add_argument("--time-budget", type=_positive_float, default=None,
                   help="seconds the encode may take (default: the effort's on the CPU when --steps is not given, "
                        "else none); without --steps the step count is planned from it up front, and reaching it "
                        "only stops early")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where to fit")
    p.add_argument("--seed", type=_seed, default=0, help="random seed")
    p.add_argument("--sparsity", type=_fraction, default=0.0, help="fraction of weights pruned by magnitude")
    p.add_argument("--arch", choices=list(ARCH_CHOICES), default=EncoderConfig.arch,
                   help="network family: auto (the default: latent where it fits, about 3 megapixels and less, and no "
                        "SIREN-only option is given; else siren), latent (multi-resolution latent grids, entropy-coded, "
                        "and a small synthesis MLP: the best rate-distortion, fast to decode), siren (sine layers) or "
                        "poly (Poly-INR: layers multiplied by affine maps of the coordinates); see the README")
    p.add_argument("--latent-sampling", choices=LATENT_SAMPLING_CHOICES, default=EncoderConfig.latent_sampling,
                   help="how the latent grids are sampled between their cells (latent family only): bilinear or "
                        "bicubic (needs a decoder of format version 4 or later); see the README")
    p.add_argument("--init", choices=INIT_CHOICES, default=EncoderConfig.init,
                   help="start the fit from the packaged meta-learned weights of the chosen network (where there are "
                        "some: codec/encoding/inits) or from a seeded random SIREN init")
    p.add_argument("--convert", action="store_true",
                   help="convert 16-bit, CMYK and transparent images (composited onto white) instead of refusing")
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite an existing output file (folders: re-encode images already done)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    batch = p.add_argument_group("folders of images")
    batch.add_argument("--jobs", type=_positive_int, help="worker processes on this machine "
                       "(default: one per CUDA GPU, else one per CPU core)")
    batch.add_argument("--threads", type=_positive_int, help="torch threads per image "
                       "(default: CPU cores / jobs on this machine, 1 on Ray)")
    batch.add_argument("--ray", metavar="ADDRESS", help="run one task per image on the Ray cluster at ADDRESS "
                       "('auto', 'ray://host:10001', or 'local' to start one here); needs pip install 'inr-codec[ray]'")
    return p


ENCODE_USAGE = """inr-encode INPUT OUTPUT [options]          (- as INPUT or OUTPUT: stdin / stdout)
       inr-encode FOLDER OUT_FOLDER [options]
       inr-encode IMAGE_OR_FOLDER [IMAGE_OR_FOLDER ...] -o OUT_FOLDER [options]"""


def _is_batch(args) -> bool:
    return args.output_dir is not None or (len(args.paths) == 2 and args.paths[0] != STDIO
                                           and Path(args.paths[0]).is_dir())


def encode_main(argv=None) -> int:
    """inr-encode."""
    parser = encode_parser()
    args = parser.parse_args(argv)
    if _is_batch(args):
        return _run(lambda: _encode_batch(args), "inr-encode")
    if len(args.paths) != 2:
        parser.error("give INPUT OUTPUT to encode one image, or images and folders with -o OUT_FOLDER")
    used = [flag for flag, value in (("--jobs", args.jobs), ("--threads", args.threads), ("--ray", args.ray))
            if value is not None]
    if used:
        parser.error(f"{', '.join(used)} apply to folders of images: give FOLDER OUT_FOLDER or -o OUT_FOLDER")
    args.input, args.output = args.paths
    if args.output == STDIO and args.json:
        parser.error("--json prints on stdout, where the .inr file goes with OUTPUT -: give a file name")

    def body() -> int:
        inp, out = Path(args.input), Path(args.output)
        if args.output == STDIO:
            _refuse_terminal_stdout("an .inr file")
        else:
            _check_output(None if args.input == STDIO else inp, out, args.force)
        if args.input == STDIO:
            source = _read_stdin(MAX_INPUT_FILE_BYTES)
            if not source:
                raise ImageInputError("-: standard input is empty")
            if len(source) > MAX_INPUT_FILE_BYTES:
                raise ImageInputError(f"-: standard input is longer than {MAX_INPUT_FILE_BYTES} bytes")
            pixels = load_pixels(source, convert=args.convert)
        else:
            pixels = load_pixels(inp, convert=args.convert)
        from .encoding import encode_pixels  # the fitting stack is imported only when encoding

        config = _encoder_config(args, progress=not args.quiet)
        result = encode_pixels(pixels, config)
        if args.output == STDIO:
            _write_stdout(result.data)  # the whole file at once, after the encode succeeded
        else:
            write_atomic(out, result.data)
        summary = {"input": str(inp), "output": str(out), **result.summary()}
        if args.json:
            print(json.dumps(summary, indent=2))
        elif not args.quiet:
            print(f"{out}: {result.bytes} bytes, {result.bpp:.4f} bpp, PSNR {result.psnr:.2f} dB, "
                  f"{result.steps} steps in {result.seconds:.1f} s on {result.device}", file=sys.stderr)
        return EXIT_OK

    return _run(body, "inr-encode")


def _encoder_config(args, **extra) -> EncoderConfig:
    """The EncoderConfig of inr-encode's options: each flag sets the field of its name (config.OPTIONS)."""
    given = {name: getattr(args, name) for name in OPTIONS if hasattr(args, name)}
    return EncoderConfig.from_options(**{**given, **extra})


def _encode_batch(args) -> int:
    """inr-encode on several images: one .inr each in an output folder, resumable (codec.batch)."""
    from .batch import BatchOptions, collect_images, plan_outputs, run_batch

    paths = [Path(p) for p in args.paths]
    out_dir = Path(args.output_dir) if args.output_dir is not None else paths.pop()
    if out_dir.exists() and not out_dir.is_dir():
        raise OSError(f"{out_dir}: exists and is not a folder (to encode one image give INPUT OUTPUT)")
    if not out_dir.exists() and out_dir.suffix.lower() == ".inr":
        raise OSError(f"{paths[0]}: is a directory; to encode the images in it give an output folder, "
                      f"not an .inr file")
    pairs = plan_outputs(collect_images(paths), out_dir)
    config = _encoder_config(args)
    options = BatchOptions(jobs=args.jobs, threads=args.threads, ray=args.ray, force=args.force,
                           progress=not args.quiet)
    try:
        summary = run_batch(pairs, config, options)
    except KeyboardInterrupt:
        print("\ninr-encode: interrupted; finished images are kept (run again to resume), no partial file written",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(summary, indent=2))
    totals = summary["totals"]
    if totals["failed"] or not args.quiet:
        print(f"inr-encode: {totals['encoded']} encoded, {totals['skipped']} skipped, {totals['failed']} failed "
              f"of {totals['images']} images; summary in {out_dir / 'summary.json'}", file=sys.stderr)
    return EXIT_FAIL if totals["failed"] else EXIT_OK


def decode_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="inr-decode", description="Decode an .inr file to a PNG at any resolution.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input", help="the .inr file (- for standard input)")
    p.add_argument("-o", "--output", help="image to write (default: the input's name with .png); - for standard "
                                          "output (PNG)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--res", type=_positive_int, help="longer side in pixels, aspect ratio kept")
    size.add_argument("--size", type=_size, help="exact size WIDTHxHEIGHT")
    size.add_argument("--scale", type=_positive_float, help="factor applied to the original size")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where to render")
    p.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS, help="refuse larger outputs")
    p.add_argument("--max-work", type=_count, default=DEFAULT_MAX_WORK,
                   help="refuse decodes needing more multiply-adds (network multiply-adds per pixel x output pixels)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="renderer: torch when installed (auto), or numpy (no torch needed)")
    p.add_argument("--render", choices=RENDERS, default="image",
                   help="the picture, or a view of the network's gradient magnitude or Laplacian (grayscale)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output file")
    return p


def decode_main(argv=None) -> int:
    """inr-decode."""
    parser = decode_parser()
    args = parser.parse_args(argv)
    if args.input == STDIO and not args.output:
        parser.error("reading from standard input: give -o FILE, or -o - for standard output")

    def body() -> int:
        inp = Path(args.input)
        out = Path(args.output) if args.output else inp.with_suffix(".png")
        if args.output == STDIO:
            _refuse_terminal_stdout("a PNG image")
            fmt = "PNG"
        else:
            _check_output(None if args.input == STDIO else inp, out, args.force)
            fmt = "PNG" if out.suffix.lower() in ("", ".png") else _pil_format(out)  # before the work
        data = _read_inr(inp)
        limits = DecodeLimits(max_pixels=args.max_pixels, max_work=args.max_work)
        pixels = decode_array(data, res=args.res, size=args.size, scale=args.scale, device=args.device,
                              limits=limits, backend=args.backend, render=args.render)
        img = array_to_image(pixels)
        if args.output == STDIO:
            _write_stdout(image_bytes(img, fmt))  # the whole image at once, after the decode succeeded
        else:
            write_atomic(out, image_bytes(img, fmt))
        return EXIT_OK

    return _run(body, "inr-decode")


def _pil_format(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise OptionError(f"cannot tell the image format from the extension of {path}; use .png")
    return fmt


def info_main(argv=None) -> int:
    """inr-info: print the header of an .inr file as JSON, after checking the whole file as the decoder does."""
    p = _Parser(prog="inr-info", description="Print the header of an .inr file as JSON. The whole file is checked "
                "first, as inr-decode checks it (framing, checksum, header, the decoder's default limits on the file, "
                "the payload), so inr-info accepts exactly the files that inr-decode decodes at some size.")
    p.add_argument("input", help="the .inr file (- for standard input)")
    args = p.parse_args(argv)

    def body() -> int:
        inp = Path(args.input)
        data = _read_inr(inp)
        header, _ = read_checked(data)
        info = {"file": str(inp), "bytes": len(data), "bpp": 8 * len(data) / (header.width * header.height),
                **header.to_dict()}
        print(json.dumps(info, indent=2))
        return EXIT_OK

    return _run(body, "inr-info")
