"""codec.demo's comparison without its long encode: baselines matched to our size, the picture, the output file."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from codec import demo


def _photo(height: int = 72, width: int = 96) -> np.ndarray:
    """A small image with edges and texture, so the baselines' sizes move with their quality."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([128 + 90 * np.sin(x / 7.0), 128 + 90 * np.cos(y / 5.0), 255.0 * ((x // 12 + y // 12) % 2)], axis=2)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def test_largest_within_bisects_to_the_best_fitting_quality():
    sizes = {q: 100 + 10 * q for q in range(1, 96)}
    quality, data = demo.largest_within(lambda q: b"x" * sizes[q], 1, 95, 655)
    assert quality == 55 and len(data) == 650
    assert demo.largest_within(lambda q: b"x" * sizes[q], 1, 95, 5000)[0] == 95
    assert demo.largest_within(lambda q: b"x" * sizes[q], 1, 95, 50)[0] == 1  # nothing fits: the smallest


def test_compare_matches_each_baseline_to_our_size_and_draws_the_crops():
    original = _photo()
    ours = np.clip(original.astype(int) + 3, 0, 255).astype(np.uint8)  # stands in for our decoded image
    our_bytes = 1500
    rows, notes, picture = demo.compare(original, ours, our_bytes, setting="test", crop=(10, 5, 40), zoom=2)
    assert rows[0].codec == "inr (ours)" and rows[0].bytes == our_bytes
    assert rows[0].psnr == pytest.approx(demo.psnr(ours, original))
    names = [row.codec for row in rows[1:]]
    expected = [b.name for b in demo.BASELINES if demo.available(b)]
    assert names == expected and "JPEG" in names and "WebP" in names
    assert len(notes) == len(demo.BASELINES) - len(expected)
    for row in rows[1:]:
        assert 0 < row.bytes <= our_bytes, row
        assert row.bpp == pytest.approx(8 * row.bytes / original[..., 0].size)
        assert row.decoded.shape == original.shape and 10 < row.psnr < 80
    panels = 1 + len(rows)
    assert picture.mode == "RGB" and picture.size[0] == panels * 80 + (panels - 1) * 4 and picture.size[1] > 80
    # the first panel is the original's crop, enlarged
    assert np.array_equal(np.asarray(picture)[:80:2, :80:2], original[5:45, 10:50])


def test_crop_box_fits_small_images():
    assert demo.crop_box((512, 768, 3)) == demo.DEFAULT_CROP
    assert demo.crop_box((72, 96, 3)) == (24, 0, 72)


def test_write_png_is_atomic_and_refuses_to_overwrite(tmp_path):
    image = Image.new("RGB", (8, 4), "red")
    out = tmp_path / "demo.png"
    demo.write_png(image, out, force=False)
    assert Image.open(out).size == (8, 4)
    with pytest.raises(FileExistsError):
        demo.write_png(Image.new("RGB", (2, 2)), out, force=False)
    assert Image.open(out).size == (8, 4)
    demo.write_png(Image.new("RGB", (2, 2)), out, force=True)
    assert Image.open(out).size == (2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.png"]  # no temporary file left


def test_main_refuses_an_existing_output_before_encoding(tmp_path, capsys):
    out = tmp_path / "demo.png"
    out.write_bytes(b"keep")
    assert demo.main(["--out", str(out)]) == 1
    assert out.read_bytes() == b"keep" and "--force" in capsys.readouterr().err


def test_the_sample_photo_is_packaged():
    from importlib.resources import files

    data = (files("codec") / "samples" / demo.SAMPLE).read_bytes()
    assert Image.open(io.BytesIO(data)).size == (768, 512)
