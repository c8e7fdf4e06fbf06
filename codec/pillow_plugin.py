"""Pillow plugin for `.inr` files, registered by `import codec`.

    import codec                                  # registers the plugin
    from PIL import Image
    im = Image.open("photo.inr")                  # header only; mode RGB or L, the stored size
    im.draft(None, (1920, 1080))                  # optional: render at least 1920x1080 instead, aspect kept
                                                  # (below the stored size: filtered, FORMAT.md §8.5)
    im.load()                                     # renders the network (numpy or torch, as codec.decode)
    im.save("copy.inr", bpp=0.3, steps=2000)      # encodes (slow: a network is fitted)

Laid out like Pillow's own plugins (QoiImagePlugin): `_accept` checks the magic bytes, `_open`
parses and validates the header only, a PyDecoder renders the pixels, registration at the bottom.
Errors follow Pillow: a file whose header is broken is not identified (`Image.open` raises
`PIL.UnidentifiedImageError`); a file cut short after its header raises
`OSError("image file is truncated ...")` on load; other damage `OSError("broken .inr file: ...")`;
a file over the decode limits `Image.DecompressionBombError`.

One strictness for every reader: the header is checked with the codec's file limits (DecodeLimits(), as
`codec.decode` and `inr-info`), load reads the whole file and refuses bytes after its checksum as they do,
and renders under the codec's default pixel and work limits as well as Pillow's own MAX_IMAGE_PIXELS
check. So a file opens and loads here exactly when `codec.decode` decodes it at that size.
"""
from __future__ import annotations

import math
import struct
from typing import IO

from PIL import Image, ImageFile

from bitstream import MAGIC, InrFormatError
from bitstream.container import VERSIONS
from bitstream.header import unpack_header

from .config import OPTIONS
from .decoding import DecodeLimits, DecodeWorkError, decode_array
from .errors import OptionError

FORMAT = "INR"
_PREFIX = struct.Struct("<4sBH")  # magic, version, header length
_LENGTH = struct.Struct("<I")
#: options of `Image.save(..., **params)` passed on to codec.encode; others are ignored, as Pillow does
SAVE_OPTIONS = tuple(name for name in OPTIONS if name != "progress")
MAX_FILE_BYTES = 1 << 30


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


class InrImageFile(ImageFile.ImageFile):
    """An `.inr` file: the header is read by `open`, the network rendered by `load`."""

    format = FORMAT
    format_description = "INR neural image (a quantized coordinate network)"

    def _open(self) -> None:
        assert self.fp is not None
        prefix = self.fp.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size or not _accept(prefix):
            raise SyntaxError("not an .inr file")
        _, version, head_len = _PREFIX.unpack(prefix)
        if version not in VERSIONS:
            raise SyntaxError(f"unsupported .inr format version {version}")
        head = self.fp.read(head_len)
        if len(head) < head_len:
            raise SyntaxError("truncated .inr header")
        try:
            header = unpack_header(head, version=version, **DecodeLimits().file_limits())
        except InrFormatError as exc:
            raise SyntaxError(f"broken .inr header: {exc}") from None
        self._stored_size = (header.width, header.height)
        self._header = header
        self._size = self._stored_size
        self._mode = "RGB" if header.channels == 3 else "L"
        self.info["inr"] = {"hidden_width": header.hidden_width, "hidden_layers": header.hidden_layers}
        self.tile = [ImageFile._Tile("inr", (0, 0, *self._size), 0, None)]

    def draft(self, mode: str | None, size: tuple[int, int] | None):
        """Render at the smallest size with the stored aspect ratio that covers `size` (smaller or
        larger than stored). `mode` is ignored. Returns (mode, box) as Pillow's JPEG draft does."""
        if not size or len(self.tile) != 1 or self.tile[0].codec_name != "inr":
            return None
        width, height = self._stored_size
        factor = max(size[0] / width, size[1] / height)
        new = (max(1, math.ceil(width * factor - 1e-9)), max(1, math.ceil(height * factor - 1e-9)))
        Image._decompression_bomb_check(new)
        self._size = new
        self.tile = [ImageFile._Tile("inr", (0, 0, *new), 0, None)]
        return self.mode, (0, 0, *new)


#: bytes read past a file's declared end, so that trailing data is refused (and counted up to this) as by the codec
TRAILING_PROBE = 1 << 16


def read_declared(fp: IO[bytes]) -> tuple[bytes, int]:
    """Read an .inr file from `fp` up to its declared end, plus up to TRAILING_PROBE bytes after it;
    returns (bytes read, bytes declared)."""
    data = fp.read(_PREFIX.size)
    if len(data) < _PREFIX.size:
        return data, _PREFIX.size + 8
    head_len = _PREFIX.unpack(data)[2]
    data += fp.read(head_len + _LENGTH.size)
    expected = _PREFIX.size + head_len + _LENGTH.size
    if len(data) < expected:
        return data, expected + 4
    expected += _LENGTH.unpack_from(data, len(data) - _LENGTH.size)[0] + 4
    if expected > MAX_FILE_BYTES:
        raise OSError(f"broken .inr file: sections declare {expected} bytes, far larger than any .inr file")
    data += fp.read(expected - len(data))
    if len(data) == expected:
        data += fp.read(TRAILING_PROBE)  # anything after the checksum is refused by the decoder
    return data, expected


class InrDecoder(ImageFile.PyDecoder):
    """Renders the whole image at the tile's size (codec.decoding, numpy or torch)."""

    _pulls_fd = True

    def decode(self, buffer) -> tuple[int, int]:
        assert self.fd is not None
        data, expected = read_declared(self.fd)
        if len(data) < expected:
            raise OSError(f"image file is truncated (.inr file has {len(data)} of its {expected} bytes)")
        size = (self.state.xsize, self.state.ysize)
        try:  # the codec's default limits (Pillow has checked the pixel count against its own)
            pixels = decode_array(data, size=size, limits=DecodeLimits())
        except (DecodeWorkError, OptionError) as exc:  # over the work limit, or the output over the pixel limit
            raise Image.DecompressionBombError(str(exc)) from None
        except InrFormatError as exc:
            raise OSError(f"broken .inr file: {exc}") from None
        self.set_as_raw(pixels.tobytes())
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from .api import encode

    options = {k: im.encoderinfo[k] for k in SAVE_OPTIONS if k in im.encoderinfo}
    fp.write(encode(im, **options))


Image.register_open(FORMAT, InrImageFile, _accept)
Image.register_decoder("inr", InrDecoder)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".inr")
Image.register_mime(FORMAT, "image/x-inr")
