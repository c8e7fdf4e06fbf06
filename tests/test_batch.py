"""inr-encode on folders of images (codec.batch): one .inr per image, summary, resume, per-image
errors, and the same bytes from local worker processes, a single-file encode and a local Ray cluster."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codec import cli, decode
from conftest import smooth_image

# 16x12 images need a high rate for the smallest network; fixed steps, no time budget: reproducible
SETTINGS = ["--steps", "20", "--bpp", "20", "--device", "cpu", "--seed", "3"]
NAMES = ["a.png", "b.png", "c.png"]


def encode(argv: list, capsys) -> tuple[int, str, str]:
    try:
        code = cli.encode_main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for k, name in enumerate(NAMES):
        Image.fromarray(smooth_image(12, 16, 3, seed=k)).save(folder / name)
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    return folder


@pytest.fixture(scope="module")
def local_run(photos, tmp_path_factory) -> tuple[Path, int, str, str]:
    """One local batch run with 2 worker processes (shared by the tests that only read it)."""
    out = tmp_path_factory.mktemp("local") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.encode_main([str(photos), str(out), *SETTINGS, "--jobs", "2", "--json"])
    return out, code, stdout.getvalue(), stderr.getvalue()


@pytest.mark.slow
def test_folder_gives_one_file_per_image_and_a_correct_summary(local_run):
    out, code, stdout, stderr = local_run
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.inr", "b.inr", "c.inr", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(stdout) == summary  # --json prints what summary.json holds
    totals = summary["totals"]
    assert (totals["images"], totals["encoded"], totals["skipped"], totals["failed"]) == (3, 3, 0, 0)
    assert summary["meta"]["settings"]["steps"] == 20 and summary["meta"]["reproducible"] is True
    assert summary["meta"]["runner"] == "local" and summary["meta"]["jobs"] == 2
    records = summary["images"]
    assert [Path(r["input"]).name for r in records] == NAMES
    for rec in records:
        path = Path(rec["output"])
        data = path.read_bytes()
        assert rec["status"] == "encoded" and rec["bytes"] == len(data) and rec["sha256"] == sha256(path)
        assert rec["bpp"] == pytest.approx(8 * len(data) / (16 * 12)) and rec["bpp"] <= 20
        assert rec["seconds"] > 0 and rec["device"] == "cpu" and rec["seed"] == 3
        decoded = np.asarray(decode(data))
        source = np.asarray(Image.open(rec["input"]))
        mse = np.mean((decoded.astype(float) - source) ** 2)
        assert rec["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-6)
    assert totals["bytes"] == sum(r["bytes"] for r in records)
    assert totals["mean_bpp"] == pytest.approx(np.mean([r["bpp"] for r in records]))
    assert totals["mean_psnr"] == pytest.approx(np.mean([r["psnr"] for r in records]))
    assert stderr.count("\n[") + stderr.startswith("[") == 3  # a progress line per image
    assert "3 encoded, 0 skipped, 0 failed" in stderr


@pytest.mark.slow
def test_batch_equals_a_single_file_encode(local_run, photos, tmp_path, capsys):
    out = local_run[0]
    code, stdout, err = encode([photos / "b.png", tmp_path / "b.inr", *SETTINGS, "--json"], capsys)
    assert code == 0, err
    assert (tmp_path / "b.inr").read_bytes() == (out / "b.inr").read_bytes()
    single = json.loads(stdout)
    record = json.loads((out / "summary.json").read_text())["images"][1]
    ignore = {"input", "output", "seconds"}
    assert {k: v for k, v in single.items() if k not in ignore} == \
        {k: v for k, v in record.items() if k in single and k not in ignore}


@pytest.mark.slow
def test_rerun_skips_finished_files(local_run, tmp_path, capsys, photos):
    out = tmp_path / "out"
    shutil.copytree(local_run[0], out)
    (out / "b.inr").unlink()  # as if the first run had been interrupted before b
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.inr")}
    first = {r["output"]: r for r in json.loads((local_run[0] / "summary.json").read_text())["images"]}
    code, _, err = encode([photos, out, *SETTINGS, "--jobs", "1"], capsys)
    assert code == 0, err
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.inr") if p.name != "b.inr"} == before
    assert (out / "b.inr").read_bytes() == (local_run[0] / "b.inr").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in summary["images"]] == ["skipped", "encoded", "skipped"]
    assert summary["totals"]["skipped"] == 2 and summary["totals"]["encoded"] == 1
    for rec in summary["images"]:
        if rec["status"] == "skipped":  # measurements carried over from the run that made the file
            old = first[str(local_run[0] / Path(rec["output"]).name)]
            assert (rec["psnr"], rec["sha256"], rec["bytes"]) == (old["psnr"], old["sha256"], old["bytes"])
    assert "skipped (done)" in err
    code, _, err = encode([photos, out, *SETTINGS], capsys)  # nothing left: no worker is started
    assert code == 0 and "0 encoded, 3 skipped, 0 failed" in err
    code, _, err = encode([photos, out, *SETTINGS, "--seed", "4"], capsys)  # other settings: kept, but said
    assert code == 0 and "note: 3 existing files were made with other settings" in err and "--force" in err
    assert (out / "b.inr").read_bytes() == (local_run[0] / "b.inr").read_bytes()


@pytest.mark.slow
def test_corrupt_image_fails_alone(photos, tmp_path, capsys):
    folder = tmp_path / "in"
    shutil.copytree(photos, folder)
    (folder / "broken.png").write_bytes((photos / "a.png").read_bytes()[:60])  # truncated PNG
    (folder / "c.png").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.inr").write_bytes(b"not an inr file")  # someone else's file: not replaced without --force
    code, _, err = encode([folder, "-o", out, *SETTINGS, "--jobs", "2"], capsys)
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.inr", "b.inr", "summary.json"]  # no partial or temp file
    assert (out / "b.inr").read_bytes() == b"not an inr file"
    assert f"error: {folder / 'broken.png'}: image data is broken or truncated" in err
    assert "1 encoded, 0 skipped, 2 failed of 3 images" in err
    records = {Path(r["input"]).name: r for r in json.loads((out / "summary.json").read_text())["images"]}
    assert records["broken.png"]["status"] == "failed" and "broken or truncated" in records["broken.png"]["error"]
    assert records["b.png"]["status"] == "failed" and "--force" in records["b.png"]["error"]
    assert records["a.png"]["status"] == "encoded"


@pytest.mark.slow
def test_listed_files_and_missing_ones(photos, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = encode([photos / "a.png", tmp_path / "missing.png", "-o", out, *SETTINGS, "--jobs", "1"], capsys)
    assert code == 1
    assert f"error: {tmp_path / 'missing.png'}: no such file" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.inr", "summary.json"]


@pytest.mark.parametrize("argv, expect, message", [
    (["{a}", "{b}", "{c}"], 2, "-o OUT_FOLDER"),  # several inputs need an output folder
    (["{a}", "{out}/x.inr", "--jobs", "2"], 2, "--jobs apply to folders"),
    (["{photos}", "{out}/x.inr"], 1, "give an output folder, not an .inr file"),
    (["{a}", "{a_jpg}", "-o", "{out}"], 2, "would both be written to"),
    (["{empty}", "{out}"], 2, "no images in this folder"),
    (["{photos}", "{a}"], 1, "exists and is not a folder"),
])
def test_usage_errors(argv, expect, message, photos, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    Image.open(photos / "a.png").save(tmp_path / "a.jpg")
    fields = {"a": photos / "a.png", "b": photos / "b.png", "c": photos / "c.png", "photos": photos,
              "out": tmp_path / "out", "a_jpg": tmp_path / "a.jpg", "empty": tmp_path / "empty"}
    (tmp_path / "out").mkdir()
    code, _, err = encode([a.format(**fields) for a in argv], capsys)
    assert code == expect, err
    assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_ray_gives_the_same_bytes_as_a_local_run(local_run, photos, tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'); the --ray path is not tested")
    out = tmp_path / "ray"
    code, _, err = encode([photos, out, *SETTINGS, "--ray", "local"], capsys)
    if "cannot start a local Ray instance" in err:  # e.g. Ray's fixed 30 s node start on a saturated machine
        pytest.skip(f"Ray is installed but could not start here: {err.strip()}")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["runner"] == "ray" and summary["totals"]["encoded"] == 3
    for name in ("a.inr", "b.inr", "c.inr"):
        assert (out / name).read_bytes() == (local_run[0] / name).read_bytes(), name


def test_local_workers_are_pinned_one_per_gpu(monkeypatch):
    """The GPU path's device assignment (the encode itself on CUDA is not run on CPU-only machines)."""
    from codec import batch
    from codec.config import EncoderConfig
    from codec.errors import OptionError

    monkeypatch.setattr(batch, "_cuda_count", lambda: 2)
    runner = batch._LocalRunner(EncoderConfig(), batch.BatchOptions())
    assert runner.devices == ["cuda:0", "cuda:1"] and not runner.cpu
    assert batch._LocalRunner(EncoderConfig(), batch.BatchOptions(jobs=3)).devices == ["cuda:0", "cuda:1", "cuda:0"]
    cpu = batch._LocalRunner(EncoderConfig(device="cpu"), batch.BatchOptions(jobs=2))
    assert cpu.devices == ["cpu", "cpu"] and cpu.cpu and cpu.threads == max(1, batch.available_cores() // 2)
    monkeypatch.setattr(batch, "_cuda_count", lambda: 0)
    with pytest.raises(OptionError, match="no CUDA GPU"):
        batch._LocalRunner(EncoderConfig(device="cuda"), batch.BatchOptions())
