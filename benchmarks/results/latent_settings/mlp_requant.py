"""Scratch probe behind the per-file MLP steps (2026-11-27): the synthesis MLP's share of a latent-grid file's
bits, and the file rewritten with its MLP tensors requantized at coarser steps (hidden x H, output x O), the
same latents; bytes of the rewritten file and PSNR of its decoding.

    PYTHONPATH=<tree> python mlp_requant.py FILE.inr IMAGE.png
"""
import dataclasses
import sys

import numpy as np
from PIL import Image

import bitstream
from bitstream import TensorRecord, choose_model
from bitstream.entropy import measure_bits
from codec.decoder import decode_array
from codec.metrics import psnr

data = open(sys.argv[1], "rb").read()
pixels = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
header, symbols = bitstream.read_file(data)
levels, n = header.latent_levels, len(symbols)
mlp_bits = sum(measure_bits(q, r.model) for q, r in zip(symbols[levels:], header.tensors[levels:]))
base = psnr(decode_array(data), pixels)
print(f"{sys.argv[1]}: {len(data)} bytes, {base:.3f} dB; MLP payload {mlp_bits} bits = {100 * mlp_bits / (8 * len(data)):.1f} %")
for hidden, output in [(2, 1), (4, 1), (2, 2), (4, 2), (8, 2), (4, 4)]:
    records, new = list(header.tensors[:levels]), list(symbols[:levels])
    for i in range(levels, n):
        r, q = header.tensors[i], symbols[i]
        step = r.step * (output if i >= n - 2 else hidden)
        requantized = np.round(q.astype(np.float64) * r.step / step).astype(np.int64).reshape(q.shape)
        records.append(TensorRecord(step, choose_model(requantized)))
        new.append(requantized)
    out = bitstream.write_file(dataclasses.replace(header, tensors=tuple(records)), new)
    p = psnr(decode_array(out), pixels)
    print(f"  hidden x{hidden}, output x{output}: {len(out)} bytes ({len(out) - len(data):+d}), {p:.3f} dB ({p - base:+.3f})")
