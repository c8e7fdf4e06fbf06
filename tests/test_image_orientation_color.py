"""Input images as viewers show them: EXIF orientation applied, non-sRGB ICC profiles converted."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

import bitstream
from codec.encoding import encode_pixels
from codec.imageio import load_pixels
from conftest import quick_config


def _jpeg_with_orientation(orientation: int) -> tuple[bytes, np.ndarray]:
    """A 96x64 (stored) JPEG: left half dark, right half bright, with the EXIF orientation tag."""
    arr = np.zeros((64, 96, 3), dtype=np.uint8)
    arr[:, 48:] = 230
    arr[:8, :] = (200, 30, 30)  # a red top band, to tell rotations apart
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue(), arr


def test_orientation_6_is_applied_before_encoding(tmp_path):
    data, stored = _jpeg_with_orientation(6)
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    for source in (path, data, Image.open(io.BytesIO(data))):
        pixels = load_pixels(source)
        assert pixels.shape == (96, 64, 3)  # shown 64 wide, 96 high
    # orientation 6: rotate 90 degrees clockwise to display; the red top band becomes the right column
    pixels = load_pixels(path).astype(int)
    assert pixels[:, -4:, 0].mean() > 150 and pixels[:, -4:, 1].mean() < 80
    assert np.abs(pixels - np.rot90(stored, k=-1)).mean() < 3
    header = bitstream.read_header(encode_pixels(load_pixels(path), quick_config(steps=3)).data)
    assert (header.width, header.height) == (64, 96)


def test_no_orientation_tag_keeps_the_stored_layout(tmp_path):
    data, _ = _jpeg_with_orientation(1)
    assert load_pixels(data).shape == (64, 96, 3)


# ---------------------------------------------------------------- ICC profiles

def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in xyz)


def matrix_trc_profile(name: str, colorants, gamma: float) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix + gamma curves), D50 white."""
    ascii_ = name.encode() + b"\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    d50 = (0.9642, 1.0, 0.8249)
    tags = [(b"desc", desc), (b"wtpt", _xyz_tag(d50)), (b"rXYZ", _xyz_tag(colorants[0])),
            (b"gXYZ", _xyz_tag(colorants[1])), (b"bXYZ", _xyz_tag(colorants[2])),
            (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv)]
    offset = 128 + 4 + 12 * len(tags)
    table, blob = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(blob), len(body))
        blob += body
    size = offset + len(blob)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + b"\0" * 12
              + b"acsp" + b"\0" * 24 + struct.pack(">I", 0) + b"".join(_s15(v) for v in d50) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + blob


#: Adobe RGB (1998) colorants adapted to D50, gamma 563/256
ADOBE_RGB = matrix_trc_profile("Adobe RGB (1998) test", [(0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087),
                                                         (0.14919, 0.06322, 0.74457)], 2.19921875)


def _png(arr: np.ndarray, icc: bytes | None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


def _patches() -> np.ndarray:
    colours = [(128, 128, 128), (100, 150, 100), (200, 60, 50), (40, 60, 180), (0, 0, 0), (255, 255, 255)]
    return np.array(colours, dtype=np.uint8).reshape(1, -1, 3).repeat(4, axis=0)


def test_adobe_rgb_image_is_converted_to_srgb():
    arr = _patches()
    got = load_pixels(_png(arr, ADOBE_RGB)).astype(int)
    src = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_RGB))
    expected = ImageCms.profileToProfile(Image.fromarray(arr), src, ImageCms.createProfile("sRGB"),
                                         renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB")
    assert np.array_equal(got, np.asarray(expected))
    g = got[0]
    assert abs(g[0] - 128).max() <= 3 and np.ptp(g[0]) <= 2  # grey stays grey (same white point)
    assert tuple(g[4]) == (0, 0, 0) and min(g[5]) >= 253  # black and white stay
    assert g[1][1] - g[1][0] > 50 + 10  # a wider-gamut green is more saturated in sRGB
    assert g[2][0] - g[2][1] > 140 + 10  # and so is the red
    assert np.abs(got - arr).max() > 20


def test_srgb_and_untagged_images_are_taken_as_they_are():
    arr = _patches()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert np.array_equal(load_pixels(_png(arr, srgb)), arr)
    assert np.array_equal(load_pixels(_png(arr, None)), arr)
    assert np.array_equal(load_pixels(_png(arr, b"not an icc profile")), arr)  # unreadable: taken as sRGB


def test_profile_of_a_grayscale_image_is_ignored():
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "PNG", icc_profile=ADOBE_RGB)
    assert np.array_equal(load_pixels(buf.getvalue())[:, :, 0], gray)


@pytest.mark.parametrize("mode", ["RGBA"])
def test_transparent_image_with_profile_keeps_its_alpha_policy(mode):
    arr = np.concatenate([_patches(), np.full((4, 6, 1), 255, np.uint8)], axis=2)
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG", icc_profile=ADOBE_RGB)
    opaque = load_pixels(buf.getvalue())  # opaque alpha dropped, colours converted like RGB
    assert np.array_equal(opaque, load_pixels(_png(_patches(), ADOBE_RGB)))
