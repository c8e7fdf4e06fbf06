"""The per-image proxy table: the anchor's PSNR at our rate, interpolated on the same image."""
from __future__ import annotations

import json

from benchmarks.proxy_table import anchor_psnr_at, table


def test_anchor_psnr_is_interpolated_within_its_range_only():
    points = [(0.5, 30.0), (0.25, 26.0), (1.0, 34.0)]
    assert anchor_psnr_at(points, 0.25) == 26.0
    assert anchor_psnr_at(points, 0.75) == 32.0
    assert anchor_psnr_at(points, 0.2) is None and anchor_psnr_at(points, 1.1) is None


def test_table_rows(tmp_path):
    ours = {"per_image": [{"image": "a.png", "setting": 0.3, "bpp": 0.3, "psnr": 31.0, "encoding_time": 12.5,
                           "encoder": {"steps": 2043}},
                          {"image": "a.png", "setting": 1.2, "error": "boom"}]}
    jpeg = {"per_image": [{"image": "a.png", "setting": 5, "bpp": 0.2, "psnr": 28.0},
                          {"image": "a.png", "setting": 10, "bpp": 0.4, "psnr": 32.0}]}
    (tmp_path / "inr.json").write_text(json.dumps(ours))
    (tmp_path / "jpeg420.json").write_text(json.dumps(jpeg))
    lines = table(tmp_path).splitlines()
    assert lines[2] == "| a.png | 0.3 | 0.3000 | 31.00 | 30.00 | +1.00 | 12.5 | 2043 |"
    assert "error: boom" in lines[3]


def test_extra_runs_and_bd_line(tmp_path):
    import json

    from benchmarks.proxy_table import table

    def run(folder, commit, points):
        folder.mkdir()
        recs = [{"image": "a.png", "setting": s, "bpp": b, "psnr": p, "encoding_time": 1.0, "encoder": {"steps": 5}}
                for s, b, p in points]
        (folder / "inr.json").write_text(json.dumps({"meta": {"git": {"commit": commit}}, "per_image": recs}))
        jpeg = [{"image": "a.png", "setting": q, "bpp": b, "psnr": p} for q, b, p in ((10, 0.1, 25.0), (50, 0.5, 30.0),
                                                                                      (90, 1.5, 36.0))]
        (folder / "jpeg420.json").write_text(json.dumps({"per_image": jpeg}))

    run(tmp_path / "a", "aaaaaaa1", [(0.15, 0.15, 27.0), (0.3, 0.3, 29.0)])
    run(tmp_path / "b", "bbbbbbb2", [(0.6, 0.6, 31.0)])
    text = table(tmp_path / "a", extra=(tmp_path / "b",))
    assert "| a.png | 0.6 | 0.6000 | 31.00 |" in text
    assert "Runs: a: commit aaaaaaa; b: commit bbbbbbb" in text
    assert "0.150 bpp 27.00 dB, 0.300 bpp 29.00 dB, 0.600 bpp 31.00 dB; BD-rate against jpeg420: -" in text
