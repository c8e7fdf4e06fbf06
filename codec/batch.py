"""Encoding many images: one `.inr` per image, in parallel on this machine or on a Ray cluster.

`run_batch` is what `inr-encode FOLDER OUT_FOLDER` (or `inr-encode IMAGE ... -o OUT_FOLDER`) runs:

- every image becomes `OUT_FOLDER/<name>.inr`; an output that already exists and is a valid
  `.inr` file is skipped (so an interrupted run resumes), an existing file that is not a valid
  `.inr` is reported as a failure unless `force` is given;
- files are written by this process, atomically, so no run leaves a partial file;
- an image that cannot be read or encoded is a failed record; the others go on;
- the summary (one record per image: bytes, bpp, PSNR, seconds, sha256, ...) is rewritten to
  `OUT_FOLDER/summary.json` after every image.

Workers: on this machine one process per CUDA GPU (`cuda:i`) when the device is CUDA, else `jobs`
CPU processes with `threads` torch threads each; with a Ray address one Ray task per image
(`num_gpus=1` when the cluster has GPUs, else `num_cpus=threads`). Every worker runs the same
function (`encode_one`), so the bytes depend only on the image, the settings and the device type:
with `steps` given and no time budget a local and a Ray run write identical files. Ray is imported
only when an address is given.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bitstream import InrFormatError, read_file

from .config import OPTIONS, EncoderConfig
from .errors import ImageInputError, OptionError
from .imageio import load_pixels, write_atomic

SUMMARY_NAME = "summary.json"
MAX_INR_BYTES = 1 << 30
_WINDOW_PER_SLOT = 2  #: images loaded and queued ahead of each worker


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _image_extensions() -> set[str]:
    from PIL import Image

    Image.init()
    readable = set(Image.OPEN)
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in readable} - {".inr"}


def collect_images(paths: list[Path]) -> list[Path]:
    """The images to encode: files as given, folders expanded to the images directly inside them.

    A folder contributes its files with an image extension Pillow reads, sorted by name (not
    hidden files, not subfolders, not `.inr` files). Duplicates are dropped. A path that does not
    exist is kept: it becomes a failed record. Raises OptionError when a folder holds no image.
    """
    extensions = _image_extensions()
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            images = sorted(p for p in path.iterdir()
                            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions)
            if not images:
                raise OptionError(f"{path}: no images in this folder")
            found.extend(images)
        else:
            found.append(path)
    unique, seen = [], set()
    for path in found:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def plan_outputs(images: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(image, output) pairs, output = out_dir / (image stem + ".inr"). OptionError on name clashes."""
    pairs, owner = [], {}
    for image in images:
        out = out_dir / (image.stem + ".inr")
        if out.name in owner:
            raise OptionError(f"{owner[out.name]} and {image} would both be written to {out}; "
                              "rename one or encode them into different folders")
        owner[out.name] = image
        pairs.append((image, out))
    return pairs


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def encode_one(pixels: np.ndarray, config: EncoderConfig, device: str, threads: int) -> dict:
    """Encode one image in a worker (a local process or a Ray task): {"data", "summary"} or {"error"}."""
    try:
        import torch

        from .encoding import encode_pixels

        torch.set_num_threads(threads)
        result = encode_pixels(pixels, replace(config, device=device, progress=False))
    except (ImageInputError, OptionError, InrFormatError) as exc:
        return {"error": _one_line(exc)}
    except MemoryError:
        return {"error": "out of memory"}
    except Exception as exc:  # noqa: BLE001 - one image's failure must not end the batch
        return {"error": f"{type(exc).__name__}: {_one_line(exc)}"}
    return {"data": result.data, "summary": result.summary()}


def _existing_record(out: Path, previous: dict) -> dict | None:
    """The record of a valid existing output (measurements carried over from the last summary)."""
    try:
        if out.stat().st_size > MAX_INR_BYTES:
            return None
        data = out.read_bytes()
        header, _ = read_file(data)
    except (OSError, InrFormatError):
        return None
    sha = hashlib.sha256(data).hexdigest()
    record = {"bytes": len(data), "bpp": 8 * len(data) / (header.width * header.height),
              "width": header.width, "height": header.height, "channels": header.channels,
              "psnr": None, "seconds": None, "sha256": sha}
    before = previous.get(out.name)
    if before and before.get("sha256") == sha:
        record = {**before, **record, "psnr": before.get("psnr"), "seconds": before.get("seconds")}
    return record


def _previous_summary(out_dir: Path) -> tuple[dict, dict | None]:
    """(records by output name, settings) of the summary.json a previous run left in out_dir."""
    try:
        summary = json.loads((out_dir / SUMMARY_NAME).read_text())
        records = {Path(r["output"]).name: r for r in summary.get("images", []) if r.get("status") != "failed"}
        return records, summary["meta"]["settings"]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}, None


class _Display:
    """Progress over images on stderr: a line per finished image with a bar and the time left."""

    def __init__(self, total: int, *, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self.done = self.encoded = 0

    def line(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()

    def record(self, rec: dict) -> None:
        self.done += 1
        self.encoded += rec["status"] == "encoded"
        if not self.enabled and rec["status"] != "failed":
            return
        filled = round(20 * self.done / self.total)
        bar = f"[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total}"
        if rec["status"] == "failed":
            text = f"{bar} error: {rec['error']}"
            self.stream.write(text + "\n")  # errors are shown also with --quiet
            self.stream.flush()
            return
        psnr = f"PSNR {rec['psnr']:.2f} dB" if rec.get("psnr") is not None else "PSNR n/a"
        what = "skipped (done)" if rec["status"] == "skipped" else f"{rec['seconds']:.1f} s"
        elapsed = time.monotonic() - self.t0
        left = ""
        if self.encoded and self.done < self.total:
            left = f", ~{_clock(elapsed / self.encoded * (self.total - self.done))} left"
        self.line(f"{bar} {Path(rec['input']).name}: {rec['bytes']} B, {rec['bpp']:.4f} bpp, {psnr}, {what}  "
                  f"({_clock(elapsed)} elapsed{left})")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs (the encoder settings are an EncoderConfig)."""

    jobs: int | None = None  #: local worker processes (None: one per GPU, else one per core)
    threads: int | None = None  #: torch threads per image (None: cores // jobs locally, 1 on Ray)
    ray: str | None = None  #: Ray address ("auto", "ray://host:10001", "local" for a new local instance)
    force: bool = False  #: re-encode outputs that already exist
    progress: bool = True  #: per-image lines on stderr


def run_batch(pairs: list[tuple[Path, Path]], config: EncoderConfig, options: BatchOptions, *,
              stream=None) -> dict:
    """Encode every (image, output) pair; returns the summary (also written to OUT/summary.json).

    Raises OptionError for settings that cannot work at all (e.g. CUDA asked for, none present),
    OSError when the output folder cannot be written. Failures of single images are records.
    """
    config = config.validated()
    out_dir = pairs[0][1].parent
    out_dir.mkdir(parents=True, exist_ok=True)
    previous, previous_settings = ({}, None) if options.force else _previous_summary(out_dir)
    records: list[dict | None] = [None] * len(pairs)
    display = _Display(len(pairs), enabled=options.progress, stream=stream)
    todo = []
    for i, (image, out) in enumerate(pairs):
        if out.exists() and not options.force:
            existing = _existing_record(out, previous)
            if existing is None:
                records[i] = _failed(image, out, f"{out} exists and is not a valid .inr file (pass --force to replace it)")
            else:
                records[i] = {**existing, "input": str(image), "output": str(out), "status": "skipped"}
            display.record(records[i])
        else:
            todo.append(i)
    skipped = sum(r is not None and r["status"] == "skipped" for r in records)
    if skipped and previous_settings is not None and previous_settings != _settings(config):
        display.line(f"note: {skipped} existing files were made with other settings ({out_dir / SUMMARY_NAME}); "
                     "they are kept as they are: pass --force to re-encode them")
    meta = {"runner": "ray" if options.ray else "local"}
    summary = _summary(records, config, meta, 0.0)
    if not todo:
        write_atomic(out_dir / SUMMARY_NAME, _dumps(summary))
        return summary

    def jobs():
        for i in todo:
            image, _ = pairs[i]
            try:
                yield i, load_pixels(image, convert=config.convert)
            except ImageInputError as exc:
                yield i, _one_line(exc)

    runner = None
    try:
        runner = _RayRunner(options) if options.ray else _LocalRunner(config, options)
        if config.steps is None and config.time_budget is None and runner.cpu:
            display.line("note: no --steps given, so each CPU encode plans its steps from a time budget and stops "
                         "early if it runs out (time_capped), when the bytes depend on the machine's speed; give "
                         "--steps N for reproducible files")
        t0 = time.monotonic()
        for i, outcome in runner.run(jobs(), config):
            image, out = pairs[i]
            if "error" in outcome:
                records[i] = _failed(image, out, outcome["error"])
            else:
                try:
                    write_atomic(out, outcome["data"])
                    records[i] = {"input": str(image), "output": str(out), "status": "encoded", **outcome["summary"],
                                  "sha256": hashlib.sha256(outcome["data"]).hexdigest()}
                except OSError as exc:
                    records[i] = _failed(image, out, f"cannot write {out}: {_one_line(exc)}")
            display.record(records[i])
            summary = _summary(records, config, runner.meta, time.monotonic() - t0)
            write_atomic(out_dir / SUMMARY_NAME, _dumps(summary))
    finally:
        if runner is not None:
            runner.close()
    return summary


def _failed(image: Path, out: Path, message: str) -> dict:
    """A failed record; its error names the input first."""
    error = message if message.startswith(str(image)) else f"{image}: {message}"
    return {"input": str(image), "output": str(out), "status": "failed", "error": error}


def _dumps(summary: dict) -> bytes:
    return (json.dumps(summary, indent=2) + "\n").encode()


def _settings(config: EncoderConfig) -> dict:
    """The encoder settings a batch records (and compares with the previous run's)."""
    return {k: getattr(config, k) for k in OPTIONS if k != "progress"}


def _summary(records: list, config: EncoderConfig, meta: dict, seconds: float) -> dict:
    done = [r for r in records if r is not None]
    ok = [r for r in done if r["status"] != "failed"]
    measured = [r["psnr"] for r in ok if r.get("psnr") is not None]
    return {
        "meta": {**meta, "settings": _settings(config), "reproducible": config.steps is not None and config.time_budget is None},
        "totals": {
            "images": len(records), "encoded": sum(r["status"] == "encoded" for r in done),
            "skipped": sum(r["status"] == "skipped" for r in done), "failed": len(done) - len(ok),
            "bytes": sum(r["bytes"] for r in ok), "mean_bpp": sum(r["bpp"] for r in ok) / len(ok) if ok else None,
            "mean_psnr": sum(measured) / len(measured) if measured else None, "seconds": seconds,
        },
        "images": done,
    }


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _worker_loop(device: str, threads: int, tasks, results) -> None:
    """A local worker process: encode (index, pixels, config) tasks until None."""
    try:
        for index, pixels, config in iter(tasks.get, None):
            results.put((index, encode_one(pixels, config, device, threads)))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        pass
    except (EOFError, OSError):  # the parent is gone (killed): nothing left to do
        pass


class _LocalRunner:
    """Worker processes on this machine: one per GPU (cuda:i) or `jobs` CPU processes."""

    cpu: bool

    def __init__(self, config: EncoderConfig, options: BatchOptions):
        wanted = (config.device or "auto").lower()
        gpus = _cuda_count() if wanted != "cpu" else 0
        if wanted.startswith("cuda") and not gpus:
            raise OptionError("--device cuda was asked for, but no CUDA GPU is available")
        self.cpu = gpus == 0
        jobs = options.jobs or (gpus if gpus else available_cores())
        # GPU path (cannot be exercised on a CPU-only machine): worker k is pinned to cuda:(k mod gpus).
        self.devices = [f"cuda:{k % gpus}" for k in range(jobs)] if gpus else ["cpu"] * jobs
        self.threads = options.threads or max(1, available_cores() // jobs)
        self.meta = {"runner": "local", "jobs": jobs, "threads": self.threads, "devices": sorted(set(self.devices)),
                     **_versions()}
        self._procs: list = []
        self._queues: list = []

    def run(self, jobs, config: EncoderConfig):
        """Yield (index, outcome) as images finish; `jobs` yields (index, pixels or error text)."""
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork after torch (or CUDA) is initialised
        results = ctx.Queue()
        self._queues.append(results)
        workers: dict[int, tuple] = {}  # slot -> (process, task queue)
        busy: dict[int, int] = {}  # slot -> image index

        def start(slot: int) -> None:
            tasks = ctx.Queue()
            self._queues.append(tasks)
            proc = ctx.Process(target=_worker_loop, args=(self.devices[slot], self.threads, tasks, results),
                               daemon=True)
            proc.start()
            workers[slot] = (proc, tasks)
            self._procs.append(proc)

        pending = iter(jobs)
        exhausted = False

        def feed(slot: int):
            """Give `slot` its next image; yields the failures met on the way (unreadable images)."""
            nonlocal exhausted
            for i, item in pending:
                if isinstance(item, str):
                    yield i, {"error": item}
                    continue
                if slot not in workers:
                    start(slot)
                workers[slot][1].put((i, item, config))
                busy[slot] = i
                return
            exhausted = True

        for slot in range(len(self.devices)):
            yield from feed(slot)
            if exhausted:
                break
        while busy:
            try:
                i, outcome = results.get(timeout=1.0)
            except queue.Empty:
                for slot, i in list(busy.items()):
                    proc = workers[slot][0]
                    if not proc.is_alive():  # killed (e.g. out of memory): that image fails, a new worker takes over
                        del busy[slot], workers[slot]
                        yield i, {"error": f"worker process died (exit code {proc.exitcode})"}
                        yield from feed(slot)
                continue
            slot = next(s for s, j in busy.items() if j == i)
            del busy[slot]
            yield i, outcome
            yield from feed(slot)

    def close(self) -> None:
        """Stop the workers (idle at the end of a run; busy after an interrupt) without waiting on them."""
        for q in self._queues:  # an image still in a pipe must not block this process's exit
            q.cancel_join_thread()
            q.close()
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(timeout=5)
        self._procs.clear()
        self._queues.clear()


class _RayRunner:
    """One Ray task per image on an existing cluster (or a new local instance for address "local")."""

    def __init__(self, options: BatchOptions):
        try:
            import ray
        except ImportError:
            raise OptionError("--ray needs the ray package: pip install 'inr-codec[ray]'") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            settings = dict(log_to_driver=False, configure_logging=True, logging_level="ERROR")
            try:
                if options.ray == "local":
                    ray.init(address="local", include_dashboard=False, **settings)
                else:
                    ray.init(address=options.ray, **settings)
            except Exception as exc:  # noqa: BLE001 - Ray raises bare Exceptions, e.g. a node start timeout
                what = "start a local Ray instance" if options.ray == "local" else f"connect to the Ray cluster at {options.ray}"
                raise OSError(f"cannot {what}: {_one_line(exc)}") from None
            self.started = True
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.cpu = self.gpus == 0
        self.threads = options.threads or 1
        cpus = int(resources.get("CPU", 1))
        self.slots = self.gpus if self.gpus else max(1, cpus // self.threads)
        self.meta = {"runner": "ray", "ray_address": options.ray, "threads": self.threads,
                     "cluster": {"CPU": cpus, "GPU": self.gpus}, **_versions()}

    def run(self, jobs, config: EncoderConfig):
        ray = self.ray
        wanted = (config.device or "auto").lower()
        if wanted.startswith("cuda") and not self.gpus:
            raise OptionError("--device cuda was asked for, but the Ray cluster has no GPU")
        use_gpu = self.gpus > 0 and wanted != "cpu"
        task = ray.remote(encode_one).options(num_cpus=1 if use_gpu else self.threads, num_gpus=1 if use_gpu else 0,
                                             max_retries=0)
        device = "cuda" if use_gpu else "cpu"
        self.meta["devices"] = [device]
        pending: dict = {}  # object ref -> image index
        source = iter(jobs)
        more = True
        while more or pending:
            while more and len(pending) < _WINDOW_PER_SLOT * self.slots:
                nxt = next(source, None)
                if nxt is None:
                    more = False
                    break
                i, item = nxt
                if isinstance(item, str):
                    yield i, {"error": item}
                else:
                    pending[task.remote(item, config, device, self.threads)] = i
            if not pending:
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    yield i, ray.get(ref)
                except ray.exceptions.RayError as exc:
                    yield i, {"error": f"Ray task failed: {_one_line(exc)[:300]}"}

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        codec_version = version("inr-codec")
    except PackageNotFoundError:  # run from a source tree that is not installed
        codec_version = None
    return {"inr_codec": codec_version, "torch": torch.__version__}
