"""Issue 28, item 2: every reader accepts and refuses the same files, with the same limits.

The readers: `codec.decode` (the API, auto backend), the numpy receiver (`decode_array(backend="numpy")`),
the Pillow plugin (`Image.open(...).load()`) and `inr-info`. Each file of the fuzz corpus, its mutations,
copies with bytes after the checksum, shape bombs and files over each limit go through all of them. Outcomes:
"ok" (pixels), "limit" (the request is over the pixel or work limit: DecodeWorkError / OptionError /
ImageTooLargeError in the API, DecompressionBombError in Pillow) or "refused" (the file itself is bad or over
a file limit). inr-info renders nothing, so it accepts a file exactly when the decoder's outcome is ok or limit.
"""
from __future__ import annotations

import io
import random
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

import bitstream
import codec  # noqa: F401 - registers the Pillow plugin
from benchmarks.robustness.fuzz_inr import corpus, mutate
from benchmarks.robustness.shape_bombs import shape_bomb
from bitstream import InrFormatError
from codec.cli import info_main
from codec.decoding import DecodeWorkError, decode_array
from codec.errors import OptionError

_MAX_DECLARED_PIXELS = 1 << 16  # mutations declaring more are left out (a valid one could render for seconds)


def _api(data: bytes, **kw):
    try:
        return "ok", decode_array(data, **kw)
    except (DecodeWorkError, OptionError):  # ImageTooLargeError is an OptionError too
        return "limit", None
    except InrFormatError:
        return "refused", None


def _pillow(data: bytes):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                pixels = np.asarray(im)
    except Image.DecompressionBombError:
        return "limit", None
    except OSError:  # UnidentifiedImageError (a broken header) is an OSError
        return "refused", None
    return "ok", pixels.reshape(pixels.shape[0], pixels.shape[1], -1)


def _info(data: bytes, tmp_path, capsys) -> str:
    path = tmp_path / "f.inr"
    path.write_bytes(data)
    code = info_main([str(path)])
    out = capsys.readouterr()
    assert code in (0, 1) and out.err.count("\n") == (code == 1), out.err
    return "accepted" if code == 0 else "refused"


def _zero_file(**fields) -> bytes:
    """A valid file whose tensors are all ZERO (no payload), framed by hand: any declared size, a few bytes."""
    from bitstream.header import file_version, pack_header

    arch = fields.get("arch", bitstream.SIREN)
    grid = bitstream.LatentGrid(fields["width"], fields["height"], fields["latent_levels"], fields["latent_channels"]) \
        if arch == bitstream.LATENT else None
    n = len(bitstream.tensor_shapes(arch, fields["hidden_width"], fields["hidden_layers"], 3, grid))
    header = bitstream.Header(channels=3, arch=arch, omega0=30.0 if arch == bitstream.SIREN else 1.0, init_id=0,
                              tensors=tuple(bitstream.TensorRecord(1.0, bitstream.TensorModel(0)) for _ in range(n)),
                              **{k: v for k, v in fields.items() if k != "arch"})
    head = pack_header(header)
    body = bitstream.MAGIC + struct.pack("<BH", file_version(header), len(head)) + head + struct.pack("<I", 0)
    return body + struct.pack("<I", zlib.crc32(body))


def _declared_pixels(data: bytes) -> int:
    try:
        header = bitstream.read_header(data, max_parameters=1 << 40, max_latents_per_pixel=1 << 20)
    except InrFormatError:
        return 0
    return header.width * header.height


def _cases() -> list[tuple[str, bytes]]:
    seeds = corpus(real=False)
    cases = [(f"corpus {i}", f) for i, f in enumerate(seeds)]
    cases += [(f"corpus {i} + {n} trailing", f + bytes(n)) for i, f in enumerate(seeds[:6]) for n in (1, 8)]
    cases.append(("corpus 0 + 1 MiB trailing", seeds[0] + bytes(1 << 20)))
    cases.append(("corpus 0 truncated", seeds[0][:-3]))
    rnd = random.Random(28)
    for i in range(240):
        op, data = mutate(rnd, seeds)
        if op != "work-bomb" and _declared_pixels(data) <= _MAX_DECLARED_PIXELS:
            cases.append((f"mutation {i} ({op})", data))
    for kind in bitstream.entropy.CONTEXT_KINDS:  # shape bombs, small enough for four readers
        cases.append((f"shape bomb kind {kind}", shape_bomb(300, 1, kind, levels=2, channels=2, n_classes=3,
                                                            classes=("laplace", "sparse", "histogram"))))
        cases.append((f"shape bomb kind {kind}, bad payload", shape_bomb(2, 300, kind, levels=2, channels=1,
                                                                         payload=b"\xff" * 64)))
    cases.append(("work bomb", _zero_file(width=8192, height=8192, hidden_width=1024, hidden_layers=4)))
    cases.append(("over the pixel limit", _zero_file(width=10000, height=10000, hidden_width=2, hidden_layers=1)))
    cases.append(("over the parameter limit", _zero_file(width=8, height=8, hidden_width=1024, hidden_layers=6)))
    cases.append(("over the latent limit", _zero_file(arch=bitstream.LATENT, width=3000, height=2000, latent_levels=12,
                                                      latent_channels=3, hidden_width=4, hidden_layers=1)))
    return cases


CASES = _cases()


def test_the_corpus_covers_every_outcome():
    kinds = {_api(data)[0] for _, data in CASES[:40]} | {_api(CASES[-4][1])[0], _api(CASES[-1][1])[0]}
    assert kinds == {"ok", "limit", "refused"}
    assert len(CASES) > 150


@pytest.mark.parametrize("name,data", CASES, ids=[name for name, _ in CASES])
def test_every_reader_gives_the_same_outcome(name, data, tmp_path, capsys):
    api, pixels = _api(data)
    numpy_outcome, numpy_pixels = _api(data, backend="numpy")
    plugin, plugin_pixels = _pillow(data)
    info = _info(data, tmp_path, capsys)
    assert (api, numpy_outcome, plugin) == (api, api, api), name
    assert info == ("accepted" if api in ("ok", "limit") else "refused"), (name, api, info)
    if api == "ok":
        assert np.array_equal(plugin_pixels, pixels), name  # the plugin renders as codec.decode does
        assert np.abs(numpy_pixels.astype(int) - pixels).max() <= 1, name  # FORMAT.md §8.6


def test_trailing_bytes_are_refused_by_the_plugin_with_the_decoders_message():
    data = corpus(real=False)[0] + b"12345678"
    with pytest.raises(OSError, match=r"^broken \.inr file: file has 8 unexpected bytes after the checksum$"):
        Image.open(io.BytesIO(data)).load()
    with pytest.raises(InrFormatError, match=r"^file has 8 unexpected bytes after the checksum$"):
        codec.decode(data)


def test_the_plugin_honours_the_codecs_pixel_limit_when_pillows_is_off(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own check disabled
    data = _zero_file(width=10000, height=10000, hidden_width=2, hidden_layers=1)
    with Image.open(io.BytesIO(data)) as im:
        with pytest.raises(Image.DecompressionBombError, match="exceeds the limit of 89478485"):
            im.load()


def test_the_plugin_uses_the_codecs_latent_limit_at_open():
    ok = _zero_file(arch=bitstream.LATENT, width=3000, height=2000, latent_levels=8, latent_channels=1,
                    hidden_width=4, hidden_layers=1)  # 8 M latents: over the old 4 M, within 4 per pixel
    with Image.open(io.BytesIO(ok)) as im:
        assert im.size == (3000, 2000)
        im.draft(None, (30, 20))
        im.load()
        assert im.size == (30, 20)
    bad = _zero_file(arch=bitstream.LATENT, width=3000, height=2000, latent_levels=12, latent_channels=3,
                     hidden_width=4, hidden_layers=1)
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(io.BytesIO(bad))
