"""Framing of an `.inr` file: magic, version, length-prefixed sections and a CRC-32 over all of it."""
from __future__ import annotations

import struct
import zlib

import numpy as np

from .architectures import FORMAT_VERSIONS
from .entropy import decode_tensors, encode_tensors
from .errors import InrFormatError
from .header import (DEFAULT_MAX_LATENTS_PER_PIXEL, DEFAULT_MAX_PARAMETERS, DEFAULT_MAX_PIXELS, Header, file_version,
                     pack_header, unpack_header)

MAGIC = b"\x89INR"
VERSIONS = FORMAT_VERSIONS  #: every version this package reads; a file is written in the lowest that can hold it
VERSION = VERSIONS[-1]  #: the newest version this package reads and writes (FORMAT.md §9)
_PREFIX = struct.Struct("<4sBH")  # magic, version, header length
_PAYLOAD_LEN = struct.Struct("<I")
_CRC = struct.Struct("<I")
MIN_FILE_SIZE = _PREFIX.size + _PAYLOAD_LEN.size + _CRC.size


def write_file(header: Header, symbols: list[np.ndarray]) -> bytes:
    """Assemble a complete `.inr` file from a header and the quantized integer tensors."""
    shapes = header.tensor_shapes()
    for i, (sym, shape) in enumerate(zip(symbols, shapes)):
        if tuple(sym.shape) != tuple(shape):
            raise ValueError(f"tensor {i} has shape {tuple(sym.shape)}, header says {shape}")
    head = pack_header(header)
    if len(head) > 0xFFFF:
        raise InrFormatError(f"header of {len(head)} bytes exceeds 65535")
    payload = encode_tensors(symbols, [rec.model for rec in header.tensors])
    version = file_version(header)
    body = _PREFIX.pack(MAGIC, version, len(head)) + head + _PAYLOAD_LEN.pack(len(payload)) + payload
    return body + _CRC.pack(zlib.crc32(body))


def _split(data: bytes) -> tuple[int, bytes, bytes]:
    """Check magic, version, lengths and checksum; return the version, the header and payload sections."""
    if not data:
        raise InrFormatError("not an .inr file (wrong magic bytes: the file is empty)")
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        raise InrFormatError(f"file is truncated: {len(data)} bytes is shorter than the smallest .inr file")
    if data[: len(MAGIC)] != MAGIC:
        raise InrFormatError(f"not an .inr file (wrong magic bytes {data[:len(MAGIC)].hex()}, expected {MAGIC.hex()})")
    if len(data) < MIN_FILE_SIZE:
        raise InrFormatError(f"file is truncated: {len(data)} bytes is shorter than the smallest .inr file")
    _, version, head_len = _PREFIX.unpack_from(data)
    if version not in VERSIONS:
        newer = " (newer than this decoder)" if version > VERSION else ""
        raise InrFormatError(f"unsupported format version {version}{newer}; this decoder reads versions "
                             f"{', '.join(map(str, VERSIONS))}")
    pay_at = _PREFIX.size + head_len
    if pay_at + _PAYLOAD_LEN.size + _CRC.size > len(data):
        raise InrFormatError(f"file is truncated: header length {head_len} runs past the end of the file")
    (pay_len,) = _PAYLOAD_LEN.unpack_from(data, pay_at)
    expected = pay_at + _PAYLOAD_LEN.size + pay_len + _CRC.size
    if expected > len(data):
        raise InrFormatError(f"file is truncated: sections declare {expected} bytes, file has {len(data)}")
    if expected < len(data):
        raise InrFormatError(f"file has {len(data) - expected} unexpected bytes after the checksum")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise InrFormatError("checksum mismatch: the file is corrupted")
    head = data[_PREFIX.size : pay_at]
    payload = data[pay_at + _PAYLOAD_LEN.size : len(data) - _CRC.size]
    return version, head, payload


def _as_bytes(data) -> bytes:
    if isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"an .inr file must be bytes, got {type(data).__name__}")
    return bytes(data)


def read_header(data: bytes, *, max_parameters: int = DEFAULT_MAX_PARAMETERS,
                max_latents_per_pixel: int = DEFAULT_MAX_LATENTS_PER_PIXEL, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Validate a whole file (framing and checksum) and parse its header only."""
    return split_file(data, max_parameters=max_parameters, max_latents_per_pixel=max_latents_per_pixel,
                      max_pixels=max_pixels)[0]


def split_file(data: bytes, *, max_parameters: int = DEFAULT_MAX_PARAMETERS,
               max_latents_per_pixel: int = DEFAULT_MAX_LATENTS_PER_PIXEL,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Header, bytes]:
    """Validate framing, checksum and header; return the header and the still-coded payload.

    Lets a caller check the header against its own limits before paying for entropy decoding. The limits are
    those of header.check_network_size (FORMAT.md §7 step 9).
    """
    version, head, payload = _split(_as_bytes(data))
    return unpack_header(head, max_parameters=max_parameters, version=version,
                         max_latents_per_pixel=max_latents_per_pixel, max_pixels=max_pixels), payload


def decode_payload(header: Header, payload: bytes) -> list[np.ndarray]:
    """Entropy-decode a payload returned by :func:`split_file` into the quantized integer tensors."""
    return decode_tensors(payload, [rec.model for rec in header.tensors], header.tensor_shapes())


def read_file(data: bytes, *, max_parameters: int = DEFAULT_MAX_PARAMETERS,
              max_latents_per_pixel: int = DEFAULT_MAX_LATENTS_PER_PIXEL,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Header, list[np.ndarray]]:
    """Validate and parse a whole file: the header and the quantized integer tensors."""
    header, payload = split_file(data, max_parameters=max_parameters, max_latents_per_pixel=max_latents_per_pixel,
                                 max_pixels=max_pixels)
    return header, decode_payload(header, payload)


def dequantize(header: Header, symbols: list[np.ndarray]) -> list[np.ndarray]:
    """float32 weights exactly as the encoder evaluated them: float32(symbol) * float32(step)."""
    return [sym.astype(np.float32) * np.float32(rec.step) for sym, rec in zip(symbols, header.tensors)]
