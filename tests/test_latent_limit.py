"""Issue 25 (decoder side): a latent-grid file's latents are bounded per declared pixel, not by max_parameters.

FORMAT.md §7 step 9: weights (every stored value but the latent grids') <= max_parameters; latent values <=
max(max_parameters, max_latents_per_pixel x min(width x height, max_pixels)) = bitstream.latent_limit.
"""
from __future__ import annotations

import struct
import tracemalloc
import zlib

import numpy as np
import pytest

import bitstream
from bitstream import (DEFAULT_MAX_LATENTS_PER_PIXEL, DEFAULT_MAX_PARAMETERS, DEFAULT_MAX_PIXELS, LATENT, Header,
                       InrFormatError, LatentGrid, TensorModel, TensorRecord, latent_limit, network_fits)
from bitstream.header import file_version, pack_header
from codec.decoding import DecodeLimits, decode_array
from spec.reader import SpecError, spec_decode


def zero_latent_file(width: int, height: int, levels: int, channels: int, hidden_width: int = 24,
                     hidden_layers: int = 2) -> bytes:
    """A valid latent-grid file whose tensors are all ZERO (no payload): a few dozen bytes for any size."""
    grid = LatentGrid(width, height, levels, channels)
    n = len(bitstream.tensor_shapes(LATENT, hidden_width, hidden_layers, 3, grid))
    header = Header(width=width, height=height, channels=3, arch=LATENT, hidden_width=hidden_width,
                    hidden_layers=hidden_layers, omega0=1.0, init_id=0, latent_levels=levels, latent_channels=channels,
                    tensors=tuple(TensorRecord(1.0, TensorModel(0)) for _ in range(n)))
    head = pack_header(header)
    body = bitstream.MAGIC + struct.pack("<BH", file_version(header), len(head)) + head + struct.pack("<I", 0)
    return body + struct.pack("<I", zlib.crc32(body))


def test_defaults_are_documented_values():
    assert (DEFAULT_MAX_PARAMETERS, DEFAULT_MAX_LATENTS_PER_PIXEL, DEFAULT_MAX_PIXELS) == (1 << 22, 4, 89_478_485)
    limits = DecodeLimits()
    assert (limits.max_parameters, limits.max_latents_per_pixel, limits.max_pixels) == (1 << 22, 4, 89_478_485)
    assert latent_limit(100, 100) == 1 << 22  # small images keep the flat allowance
    assert latent_limit(4000, 3000) == 48_000_000
    assert latent_limit(65535, 65535) == 4 * 89_478_485  # however large the declared size


def test_a_6_megapixel_latent_file_decodes_with_default_limits():
    """8 levels x 1 channel on 3000x2000: 8.0 M latents, twice the old 4,194,304 limit."""
    data = zero_latent_file(3000, 2000, 8, 1)
    header = bitstream.read_header(data)
    values = header.grid().values()
    assert DEFAULT_MAX_PARAMETERS < values <= latent_limit(3000, 2000)
    assert network_fits(LATENT, 24, 2, 3, header.grid())
    pixels = decode_array(data, size=(12, 8), backend="numpy")
    assert pixels.shape == (8, 12, 3)
    hdr, symbols = spec_decode(data)  # the independent FORMAT.md reader accepts it too
    assert sum(s.size for s in symbols[:8]) == values


def test_the_synthesis_mlp_still_counts_against_max_parameters():
    data = zero_latent_file(64, 64, 2, 1, hidden_width=1024, hidden_layers=5)  # 4.2 M weights, few latents
    with pytest.raises(InrFormatError, match=r"^synthesis network has \d+ parameters, more than the decoder's limit 4194304$"):
        bitstream.read_header(data)
    with pytest.raises(SpecError, match="too many parameters"):
        spec_decode(data)
    assert not network_fits(LATENT, 1024, 5, 3, LatentGrid(64, 64, 2, 1))


def test_more_latents_than_the_declared_pixels_earn_are_refused():
    grid = LatentGrid(3000, 2000, 12, 3)  # 3 channels per level: 24.0 M latents, more than 4 x 6 M pixels
    assert grid.values() > latent_limit(3000, 2000)
    data = zero_latent_file(3000, 2000, 12, 3)
    with pytest.raises(InrFormatError, match=r"^latent grids hold 24000564 values, more than the decoder's limit "
                                             r"24000000 for a 3000x2000 image"):
        bitstream.read_header(data)
    with pytest.raises(SpecError, match="too many latent values"):
        spec_decode(data)
    # the caller may raise the allowance
    assert bitstream.read_header(data, max_latents_per_pixel=5).grid().values() == grid.values()


def test_the_limit_is_exact():
    grid = LatentGrid(3000, 2000, 2, 1)
    values = grid.values()  # 6,000,000 + 1,500,000
    data = zero_latent_file(3000, 2000, 2, 1)
    pixels_for = -(-values // 4)  # the declared pixels counted at 4 per pixel that admit exactly `values`
    bitstream.read_header(data, max_pixels=pixels_for)
    with pytest.raises(InrFormatError, match="latent grids hold"):
        bitstream.read_header(data, max_pixels=pixels_for - 1)
    with pytest.raises(InrFormatError, match="latent grids hold"):  # through the decoder's limits as well
        decode_array(data, size=(4, 4), limits=DecodeLimits(max_pixels=pixels_for - 1))


def test_a_hostile_declared_size_is_refused_before_allocation():
    data = zero_latent_file(65535, 65535, 1, 1, hidden_width=1, hidden_layers=1)  # 4.3 G latents declared
    tracemalloc.start()
    try:
        with pytest.raises(InrFormatError, match="latent grids hold 4294836225 values, more than the decoder's limit 357913940"):
            decode_array(data, size=(4, 4))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_every_file_the_old_rule_accepted_is_still_accepted():
    """The old rule: all stored values (latents included) <= max_parameters."""
    rng = np.random.default_rng(25)
    for _ in range(300):
        w, h = (int(2 ** rng.uniform(0, 16)) for _ in range(2))
        w, h = min(w, 65535), min(h, 65535)
        grid = LatentGrid(w, h, int(rng.integers(1, 13)), int(rng.integers(1, 9)))
        width, layers = int(rng.integers(1, 64)), int(rng.integers(1, 4))
        total = bitstream.parameter_count(LATENT, width, layers, 3, grid)
        if total <= DEFAULT_MAX_PARAMETERS:
            assert network_fits(LATENT, width, layers, 3, grid), (w, h, grid)
