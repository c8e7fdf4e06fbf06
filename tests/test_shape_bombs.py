"""Issue 28, item 1: the entropy decoder's cost follows the stored values, not the grids' shape.

The 168-byte file of the issue (a 65535x1 latent-grid file, 12 levels of 8 channels, NEIGHBOUR_CONTEXT with
one Laplace class, a 4-byte payload) took 18 s to decode, its variants 24 s to 102 s, because the decoder
looped once per row or anti-diagonal. They are built here (benchmarks/robustness/shape_bombs.py) and must
decode in under a second of CPU time. The rewritten loops (bitstream/entropy.py: a chain loop for one-pixel
thin grids, Python integers for short rows and anti-diagonals, numpy for long ones) must give exactly the
values of the independent FORMAT.md reader (tests/spec/reader.py) on every shape and model mix, and refuse
exactly what it refuses.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import bitstream
from benchmarks.robustness.shape_bombs import named_cases, shape_bomb, stored_values
from bitstream import HISTOGRAM, LAPLACE, SPARSE_LAPLACE, ZERO, Header, InrFormatError, TensorModel, TensorRecord
from bitstream.entropy import CONTEXT_KINDS, NEIGHBOUR_CONTEXT, ROW_CONTEXT, SHORT_STEP, _context_model
from codec.decoding import decode_array
from spec.reader import SpecError, spec_read


@pytest.mark.parametrize("name", list(named_cases()))
def test_issue_28_shape_bombs_decode_in_under_a_second(name):
    data = named_cases()[name]
    if "168 B" in name:
        assert len(data) == 168
    if "336 B" in name:
        assert len(data) == 336
    assert stored_values(data) > 1_000_000
    t0 = time.process_time()
    pixels = decode_array(data, size=(16, 1), backend="numpy")  # the issue: --size 16x1 took as long as the whole
    seconds = time.process_time() - t0
    assert pixels.shape == (1, 16, 1)
    assert seconds < 1.0, f"{name}: {seconds:.2f} s of CPU"


def test_thin_bomb_values_match_the_spec_reader():
    """The issue's file with fewer levels and channels (the spec reader loops per diagonal, as FORMAT.md says)."""
    for kind in CONTEXT_KINDS:
        for width, height in ((4000, 1), (1, 4000), (3000, 2), (2, 3000)):
            data = shape_bomb(width, height, kind, levels=3, channels=2, n_classes=4,
                              classes=("sparse", "laplace", "histogram"), payload=bytes(range(40)))
            _same_outcome(data)


def _same_outcome(data: bytes):
    try:
        _, ours = bitstream.read_file(data)
    except InrFormatError as exc:
        with pytest.raises((SpecError, AssertionError, ValueError, KeyError, BaseException)):  # the spec reader
            spec_read(data)  # lets constriction's own exceptions through: any is a refusal
        return str(exc)
    _, theirs = spec_read(data)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert np.array_equal(a, np.asarray(b).reshape(a.shape))
    return None


def _random_plain(rng: np.random.Generator) -> TensorModel:
    kind = int(rng.integers(0, 4))
    if kind == ZERO:
        return TensorModel(ZERO)
    if kind == HISTOGRAM:
        max_abs = int(rng.integers(1, 6))
        counts = rng.integers(0, 5, 2 * max_abs + 1)
        counts[max_abs] += 1
        return TensorModel(HISTOGRAM, max_abs, counts=tuple(int(c) for c in counts))
    max_abs = int(rng.choice([1, 3, 40, 32767]))
    scale = float(np.float16(rng.uniform(0.1, 5)))
    if kind == LAPLACE:
        return TensorModel(LAPLACE, max_abs, scale=scale)
    return TensorModel(SPARSE_LAPLACE, max_abs, scale=scale, p_zero=int(rng.integers(1, 65535)))


def _grid_file(grid: np.ndarray, model: TensorModel, payload: bytes | None) -> bytes:
    """A one-level latent-grid file holding `grid` under `model` (or, with `payload`, those bytes instead)."""
    channels, rows, cols = grid.shape
    shapes = bitstream.tensor_shapes(bitstream.LATENT, 1, 1, 1, bitstream.LatentGrid(cols, rows, 1, channels))
    records = [TensorRecord(1.0, model)] + [TensorRecord(1.0, TensorModel(ZERO)) for _ in shapes[1:]]
    header = Header(width=cols, height=rows, channels=1, arch=bitstream.LATENT, hidden_width=1, hidden_layers=1,
                    omega0=1.0, init_id=0, tensors=tuple(records), latent_levels=1, latent_channels=channels)
    if payload is None:
        return bitstream.write_file(header, [grid] + [np.zeros(s, dtype=np.int32) for s in shapes[1:]])
    from benchmarks.robustness.fuzz_inr import fix_crc
    from bitstream.header import file_version, pack_header

    head = pack_header(header)
    body = bitstream.MAGIC + bytes([file_version(header)]) + len(head).to_bytes(2, "little") + head
    return fix_crc(body + len(payload).to_bytes(4, "little") + payload + b"\0\0\0\0")


# every path of the decoder: one pixel thin (the chain), short rows / anti-diagonals, just past SHORT_STEP
# (numpy, with short corner anti-diagonals in Python) and both
SIDES = (1, 2, 3, 7, SHORT_STEP, SHORT_STEP + 1, SHORT_STEP + 9)


def test_every_decoder_path_gives_the_spec_readers_values():
    rng = np.random.default_rng(28)
    outcomes = {"decoded": 0, "refused": 0}
    for case in range(160):
        kind = CONTEXT_KINDS[case % 4]
        rows, cols = int(rng.choice(SIDES)), int(rng.choice(SIDES))
        grid = np.clip(np.round(rng.laplace(0, rng.uniform(0.3, 3), (2, rows, cols))), -6, 6).astype(np.int32)
        if case % 3 == 0:  # smooth grids, for the predict kinds
            grid = np.cumsum(grid, axis=1 + case % 2).clip(-200, 200).astype(np.int32)
        if case % 8 < 5:  # a valid stream of the encoder's models (classes of every plain kind)
            kinds = (ZERO, LAPLACE) + tuple(k for k in (HISTOGRAM, SPARSE_LAPLACE) if rng.random() < 0.6)
            model = _context_model(grid, int(rng.integers(2, 17)), kinds, kind)[0]
            if model is None or all(sub.kind == ZERO for sub in model.classes):
                continue
            data = _grid_file(grid, model, None)
        else:  # random models and random payload words: decoded or refused, the same way by both readers
            subs = [_random_plain(rng) for _ in range(int(rng.integers(2, 17)))]
            subs[0] = subs[0] if subs[0].kind != ZERO else TensorModel(LAPLACE, 5, scale=1.0)
            payload = rng.integers(0, 256, 4 * int(rng.integers(1, 12)), dtype=np.uint8).tobytes()
            data = _grid_file(grid, TensorModel(kind, classes=tuple(subs)), payload)
        outcomes["refused" if _same_outcome(data) else "decoded"] += 1
    assert outcomes["decoded"] > 60 and outcomes["refused"] > 10, outcomes


def test_row_predict_value_out_of_range_names_the_row_on_every_path():
    """A decoded value beyond ±32767 is refused after its row, with the row's number, on every path."""
    wide = TensorModel(LAPLACE, 32767, scale=8192.0)
    for cols in (1, 5, SHORT_STEP + 3):
        grid = np.zeros((1, 3, cols), dtype=np.int32)
        grid[0, 0, :] = 30000  # row 1 predicts 30000 and adds 30000
        grid[0, 1, :] = 30000
        model = TensorModel(bitstream.entropy.ROW_CONTEXT, classes=(wide, wide))
        data = _grid_file(grid, model, None)  # ROW_CONTEXT: the values themselves, fine
        assert np.array_equal(bitstream.read_file(data)[1][0], grid)
        head_len = int.from_bytes(data[5:7], "little")
        payload = data[7 + head_len + 4:-4]  # row 0 codes 30000, row 1 codes 30000 (classes 0, then 1)
        predict = _grid_file(grid, TensorModel(bitstream.entropy.ROW_PREDICT, classes=(wide, wide)), payload)
        # under ROW_PREDICT row 1 is 30000 + its prediction from row 0 (15000 at the ends, 30000 inside)
        with pytest.raises(InrFormatError, match=r"^row-predict tensor decoded a value beyond ±32767 \(channel 0, row 1\)$"):
            bitstream.read_file(predict)
        with pytest.raises(Exception):
            spec_read(predict)


def test_neighbour_kinds_cost_follows_values_not_shape():
    """CPU time per stored value of a one-pixel-thin grid is within a small factor of a square grid's."""
    def per_value(data):
        t0 = time.process_time()
        bitstream.read_file(data)
        return (time.process_time() - t0) / stored_values(data)

    for kind in (NEIGHBOUR_CONTEXT, ROW_CONTEXT):
        thin = per_value(shape_bomb(65535, 1, kind, levels=1, channels=4)) if kind == NEIGHBOUR_CONTEXT else \
            per_value(shape_bomb(1, 65535, kind, levels=1, channels=4))
        square = per_value(shape_bomb(512, 512, kind, levels=1, channels=1))
        assert thin < 2e-6 and square < 2e-6, (kind, thin, square)


def test_random_shape_bombs_of_the_fuzzer_decode_or_fail_cleanly_and_quickly():
    import random

    from benchmarks.robustness.fuzz_inr import decode_case
    from benchmarks.robustness.shape_bombs import random_shape_bomb

    rnd = random.Random(2828)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(40):
        data = random_shape_bomb(rnd)
        t0 = time.process_time()
        try:
            decode_case(data, "shape-bomb")
            outcomes["decoded"] += 1
        except InrFormatError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        seconds = time.process_time() - t0
        assert seconds < 1.0 and seconds / stored_values(data) < 5e-6, (seconds, stored_values(data))
    assert outcomes["decoded"] and outcomes["refused"], outcomes
