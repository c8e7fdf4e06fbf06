"""The Pillow plugin with the real Pillow: open, load, convert, draft, save round trip, broken files."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import codec
from benchmarks.robustness.fuzz_inr import crafted_file
from bitstream import ZERO
from conftest import smooth_image


@pytest.fixture(scope="module")
def inr(tmp_path_factory):
    """A 20x12 RGB file with random weights (no fitting needed)."""
    from bitstream import HISTOGRAM, LAPLACE

    path = tmp_path_factory.mktemp("inr") / "a.inr"
    path.write_bytes(crafted_file(np.random.default_rng(7), channels=3, hidden_width=12, hidden_layers=2, width=20,
                                  height=12, kinds=(LAPLACE, HISTOGRAM, ZERO)))
    return path


def test_open_reads_the_header_and_load_renders_the_stored_size(inr):
    data = inr.read_bytes()
    with Image.open(inr) as im:
        assert (im.format, im.mode, im.size) == ("INR", "RGB", (20, 12))
        assert im.get_format_mimetype() == "image/x-inr"
        im.load()
        assert np.array_equal(np.asarray(im), np.asarray(codec.decode(data)))
    with Image.open(io.BytesIO(data)) as im:  # streams too
        assert np.asarray(im).shape == (12, 20, 3)


def test_convert_and_grayscale_files(inr):
    with Image.open(inr) as im:
        assert im.convert("L").size == (20, 12)
        rgba = im.convert("RGBA")
        assert rgba.mode == "RGBA" and np.asarray(rgba)[:, :, 3].min() == 255
    gray = crafted_file(np.random.default_rng(1), channels=1, hidden_width=6, hidden_layers=2, width=9, height=31,
                        kinds=(ZERO,))
    with Image.open(io.BytesIO(gray)) as im:
        assert (im.mode, im.size) == ("L", (9, 31))
        assert np.asarray(im).max() == 128  # all-zero network -> mid grey


def test_draft_renders_another_size_with_the_aspect_kept(inr):
    data = inr.read_bytes()
    with Image.open(inr) as im:
        mode, box = im.draft(None, (100, 100))
        assert im.size == (167, 100) and box == (0, 0, 167, 100)
        assert np.array_equal(np.asarray(im), np.asarray(codec.decode(data, size=(167, 100))))
    with Image.open(inr) as im:
        im.draft(None, (5, 5))
        assert im.size == (9, 5)
    with Image.open(inr) as im:
        im.thumbnail((10, 10))  # thumbnail drafts, so the network is rendered small
        assert im.size == (10, 6)


def test_save_round_trip(tmp_path):
    pixels = smooth_image(12, 16, 3, seed=5)
    img = Image.fromarray(pixels)
    path = tmp_path / "tiny.inr"
    img.save(path, bpp=12, steps=5, seed=1)
    data = path.read_bytes()
    assert data == codec.encode(pixels, bpp=12, steps=5, seed=1)  # save options reach the encoder
    assert 8 * len(data) / (16 * 12) <= 12
    with Image.open(path) as back:
        assert (back.format, back.mode, back.size) == ("INR", "RGB", (16, 12))
        back.load()
        assert np.array_equal(np.asarray(back), np.asarray(codec.decode(data)))
    buf = io.BytesIO()
    img.convert("L").save(buf, format="INR", bpp=12, steps=5)
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "L"


def test_save_refuses_bad_options_and_leaves_no_file(tmp_path):
    path = tmp_path / "bad.inr"
    with pytest.raises(codec.OptionError):
        Image.new("RGB", (16, 12)).save(path, bpp=-1)
    assert not path.exists()


def test_truncated_files_give_pillow_errors(inr, tmp_path):
    data = inr.read_bytes()
    head_end = 7 + struct.unpack_from("<H", data, 5)[0]
    path = tmp_path / "cut.inr"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        if n < head_end:
            with pytest.raises(UnidentifiedImageError):
                Image.open(path)
            continue
        with Image.open(path) as im:
            assert im.size == (20, 12)
            with pytest.raises(OSError, match="^image file is truncated"):
                im.load()


def test_corrupted_file_is_a_broken_data_error(inr, tmp_path):
    data = bytearray(inr.read_bytes())
    data[-10] ^= 0x10
    with Image.open(io.BytesIO(bytes(data))) as im:
        with pytest.raises(OSError, match="^broken .inr file: checksum mismatch"):
            im.load()
    with pytest.raises(UnidentifiedImageError):  # a header field out of range: not identified
        bad = bytearray(inr.read_bytes())
        bad[7 + 4] = 2  # channels
        Image.open(io.BytesIO(bytes(bad)))


def test_work_bomb_is_a_decompression_bomb_unless_drafted_small():
    bomb = crafted_file(np.random.default_rng(0), channels=3, hidden_width=1024, hidden_layers=4,
                        width=8192, height=8192, kinds=(ZERO,))
    with Image.open(io.BytesIO(bomb)) as im:
        assert im.size == (8192, 8192)
        with pytest.raises(Image.DecompressionBombError, match="multiply-adds"):
            im.load()
    with Image.open(io.BytesIO(bomb)) as im:
        im.draft(None, (8, 8))
        assert np.asarray(im).shape == (8, 8, 3)
