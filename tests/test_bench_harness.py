"""The benchmark harness end to end on tiny synthetic images (benchmarks.cli.main)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.cli import main
from benchmarks.registry import REGISTRY
from benchmarks.base import Codec
from benchmarks.dataset import dataset_name, load_images
from benchmarks.report import validate_result

SCHEMA_RESULTS = ("bpp", "psnr", "ms-ssim", "encoding_time", "decoding_time")


@pytest.fixture()
def tiny_dataset(tmp_path):
    """Two 24x16 colour images (non-square), and a non-image file that must be ignored."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:16, 0:24]
    for i in range(2):
        a = np.stack([x * 10 + 40 * i, y * 15, (x + y) * 5], -1) + rng.integers(0, 20, (16, 24, 3))
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


class FakeCodec(Codec):
    """Drops low bits: lossy, deterministic, counts its calls."""

    name = "fake"
    description = "fake codec for tests"
    setting_name = "quality"
    default_settings = (1, 3, 5)
    calls = 0

    def encode(self, img, setting):
        type(self).calls += 1
        a = np.asarray(img)
        return bytes([a.shape[0], a.shape[1], setting]) + (a >> setting).tobytes()

    def decode(self, data):
        h, w, s = data[0], data[1], data[2]
        a = np.frombuffer(data[3:], np.uint8).reshape(h, w, 3)
        return Image.fromarray(((a.astype(np.uint16) << s) + (1 << s) // 2).clip(0, 255).astype(np.uint8))


class MissingCodec(Codec):
    name = "missing"
    description = "a codec whose plugin is not installed"

    def unavailable(self):
        return "needs `pip install nothing`"


def _check_doc(doc, n_points, n_images):
    validate_result(doc)
    for key in SCHEMA_RESULTS:
        assert len(doc["results"][key]) == n_points
        assert all(isinstance(v, float) for v in doc["results"][key])
    meta = doc["meta"]
    for key in ("dataset", "device", "environment", "git", "seed", "command", "date", "settings", "codec_settings"):
        assert key in meta
    assert meta["dataset"]["n_images"] == n_images
    assert "torch" in meta["environment"]
    assert len(doc["per_image"]) == n_points * n_images


def test_dataset_reductions_and_name(tiny_dataset):
    images = load_images(tiny_dataset, limit=1, downscale=0.5)
    assert [im.name for im in images] == ["im0.png"]
    assert images[0].size == (12, 8) and images[0].original_size == (24, 16)
    assert dataset_name(tiny_dataset, 8, 0.25) == "tiny_limit8_x0.25"
    assert dataset_name(tiny_dataset, None, None) == "tiny"


def test_dataset_subset_by_name(tiny_dataset):
    names = [im.name for im in load_images(tiny_dataset)]
    assert len(names) >= 2
    picked = load_images(tiny_dataset, names=[names[-1], Path(names[0]).stem])  # a file name and a stem
    assert [im.name for im in picked] == [names[0], names[-1]]  # in the folder's order
    assert dataset_name(tiny_dataset, None, None, [names[0]]) == "tiny_images1"
    with pytest.raises(FileNotFoundError, match="no image named nosuch"):
        load_images(tiny_dataset, names=["nosuch"])


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--inr-bpps" in out and "0.1, 0.25, 0.5, 0.75, 1.5" in out and "default" in out


def test_end_to_end_baselines_cache_and_skip(tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(REGISTRY, "fake", FakeCodec)
    monkeypatch.setitem(REGISTRY, "missing", MissingCodec)
    out = tmp_path / "out"
    argv = [str(tiny_dataset), "--codecs", "fake,jpeg420,missing", "--points", "jpeg420=20,50,90",
            "--out", str(out), "--no-plot", "--seed", "3"]
    FakeCodec.calls = 0
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "skipping missing: needs `pip install nothing`" in captured.err
    assert json.loads(captured.out)["codecs"] == {"jpeg420": 3, "fake": 3}
    assert FakeCodec.calls == 6

    fake = json.loads((out / "fake.json").read_text())
    _check_doc(fake, 3, 2)
    assert fake["meta"]["seed"] == 3 and fake["meta"]["settings"] == [1, 3, 5]
    assert fake["meta"]["command"].startswith("inr-bench ") and "--codecs fake,jpeg420,missing" in fake["meta"]["command"]
    # rate is that of the real bytes: 3 header bytes + 3 bytes per pixel
    assert fake["results"]["bpp"][0] == pytest.approx(8 * (3 + 24 * 16 * 3) / (24 * 16))
    assert fake["results"]["psnr"][0] > fake["results"]["psnr"][2]  # fewer bits dropped, better
    jpeg = json.loads((out / "jpeg420.json").read_text())
    _check_doc(jpeg, 3, 2)
    assert jpeg["results"]["bpp"] == sorted(jpeg["results"]["bpp"])
    table = (out / "bd_rate.md").read_text()
    assert "| jpeg420:" in table and "| fake:" in table
    assert (out / "COMMAND.txt").exists() and (out / "cache" / "records.jsonl").exists()

    # resumable: a rerun measures nothing again
    assert main(argv) == 0
    assert FakeCodec.calls == 6
    assert "(cached)" in capsys.readouterr().err
    # a new operating point is the only one measured
    assert main([*argv, "--points", "fake=1,3,5,6"]) == 0
    assert FakeCodec.calls == 8
    # --cached-only measures nothing: a point missing from the cache fails and is left out
    assert main([*argv, "--points", "fake=1,3,7", "--cached-only"]) == 1
    assert FakeCodec.calls == 8
    fake = json.loads((out / "fake.json").read_text())
    assert fake["meta"]["settings"] == [1, 3]
    assert "not in the cache (--cached-only)" in fake["meta"]["failed_points"][0]["errors"][0]


def test_failed_point_is_left_out_and_reported(tiny_dataset, tmp_path, monkeypatch, capsys):
    class Flaky(FakeCodec):
        name = "flaky"

        def encode(self, img, setting):
            if setting == 3:
                raise ValueError("cannot reach that quality")
            return super().encode(img, setting)

    monkeypatch.setitem(REGISTRY, "flaky", Flaky)
    out = tmp_path / "out"
    assert main([str(tiny_dataset), "--codecs", "flaky", "--out", str(out), "--no-plot", "-q"]) == 1
    doc = json.loads((out / "flaky.json").read_text())
    assert doc["meta"]["settings"] == [1, 5]
    assert doc["meta"]["failed_points"][0]["setting"] == 3
    assert "ValueError: cannot reach that quality" in doc["meta"]["failed_points"][0]["errors"][0]
    assert "cannot reach that quality" in capsys.readouterr().err


@pytest.mark.slow
def test_end_to_end_with_our_codec(tiny_dataset, tmp_path):
    try:
        import codec  # noqa: F401
        from codec import decode, encode  # noqa: F401
    except Exception as exc:  # pragma: no cover - only while the codec does not exist
        pytest.skip(f"our codec is not importable yet: {type(exc).__name__}: {exc}")
    out = tmp_path / "out"
    # 24x16 images: the smallest network needs ~4 bpp, so the targets are high
    rc = main([str(tiny_dataset), "--codecs", "jpeg420,inr", "--inr-steps", "30", "--inr-bpps", "8,16",
               "--points", "jpeg420=30,90", "--device", "cpu", "--out", str(out), "-q"])
    assert rc == 0
    doc = json.loads((out / "inr.json").read_text())
    _check_doc(doc, 2, 2)
    assert doc["meta"]["codec_settings"]["steps"] == 30 and doc["meta"]["device"] == "cpu"
    for rec in doc["per_image"]:
        assert rec["bpp"] <= rec["setting"] and rec["bpp"] == 8 * rec["bytes"] / (24 * 16)
        assert "warning" not in rec  # rate within target; encoder's own byte count (if given) is the file's
        if "encoder" in rec:
            assert rec["encoder"].get("bytes", rec["bytes"]) == rec["bytes"]
    assert "| inr:" in (out / "bd_rate.md").read_text()


def test_validate_result_rejects_malformed_documents():
    good = {"name": "x", "description": "d", "meta": {}, "per_image": [],
            "results": {k: [1.0, 2.0] for k in SCHEMA_RESULTS}}
    validate_result(good)
    for broken in ({k: v for k, v in good.items() if k != "meta"},
                   {**good, "results": {**good["results"], "psnr": [1.0]}},
                   {**good, "results": {k: v for k, v in good["results"].items() if k != "ms-ssim"}},
                   {**good, "results": {**good["results"], "bpp": ["0.1", "0.2"]}}):
        with pytest.raises(ValueError):
            validate_result(broken)


def test_cache_survives_a_line_cut_short(tmp_path):
    from benchmarks.runner import Cache

    path = tmp_path / "records.jsonl"
    path.write_text('{"key": "a", "record": {"x": 1}}\n{"key": "b", "rec')  # run killed mid-write
    cache = Cache(path)
    assert cache.records == {"a": {"x": 1}}
    cache.put("c", {"y": 2})
    assert Cache(path).records == {"a": {"x": 1}, "c": {"y": 2}}
    assert Cache(path, load=False).records == {}
