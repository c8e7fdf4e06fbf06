"""The independent `.inr` reader (tests/spec/reader.py, written from bitstream/FORMAT.md alone) against
the reference: integer symbols and dequantized weights bit-for-bit, rendered pixels within one level (and
equal for >= 99%), and the same files refused by both.
"""
from __future__ import annotations

import struct
import zlib

import constriction
import numpy as np
import pytest

from spec.reader import (
    MAGIC, FIXED, LATENT_FIELDS, ZERO, LAPLACE, HISTOGRAM, SPARSE_LAPLACE, ROW_CONTEXT, ROW_PREDICT,
    NEIGHBOUR_CONTEXT, NEIGHBOUR_PREDICT, PLAIN_KINDS, ROW_KINDS, NEIGHBOUR_KINDS, CLASS_KINDS, SYMBOL_LIMIT,
    SpecError, spec_shapes, spec_records, spec_context_classes, spec_row_prediction, spec_neighbour_class,
    spec_neighbour_prediction, spec_anti_diagonal, spec_neighbours, spec_decode, spec_read, spec_axis,
    spec_sample, spec_render,
)

pytestmark = pytest.mark.slow  # the reference files are made by real (short) encodes

# --- the checks against the reference implementation --------------------------------------------


def _encode(channels: int, seed: int, arch: str = "siren", size: tuple[int, int] = (12, 20),
            sampling: str = "bilinear") -> bytes:
    from codec.config import EncoderConfig, MlpSettings
    from codec.encoding import encode_pixels

    from conftest import smooth_image

    # a smooth image, so the fitted network beats a flat image (noise would get the flat fallback,
    # whose weights are all zero and exercise too few of the format's models)
    img = smooth_image(*size, channels, seed=seed)
    if arch == "latent":  # sizes its own grids and MLP; tiny images need a high rate for its smallest file
        cfg = EncoderConfig(arch="latent", bpp=40.0, steps=60, device="cpu", latent_sampling=sampling)
    else:
        cfg = EncoderConfig(mlp=MlpSettings(hidden_width=8, hidden_layers=2 if arch == "siren" else 3, bits=6), steps=60,
                            device="cpu", arch=arch)
    result = encode_pixels(img, cfg)
    assert not result.flat_fallback
    return result.data


def _header_fields(header) -> dict:
    names = ("width", "height", "channels", "arch", "hidden_width", "hidden_layers", "omega0", "init_id")
    fields = {k: getattr(header, k) for k in names}
    if header.arch == 3:
        fields.update(latent_levels=header.latent_levels, latent_channels=header.latent_channels,
                      latent_sampling=header.latent_sampling)
    return fields


def _all_models_variant(data: bytes, sparse: int = 2) -> bytes:
    """The same network re-written so that it uses every model kind (HISTOGRAM, ZERO, LAPLACE, SPARSE_LAPLACE)."""
    import bitstream

    header, symbols = bitstream.read_file(data)
    symbols = [s.copy() for s in symbols]
    symbols[-1][:] = 0  # output bias -> ZERO
    records = list(header.tensors)
    if hasattr(bitstream, "SPARSE_LAPLACE"):  # tensor `sparse` (a weight), a third of it zeroed
        flat = symbols[sparse].reshape(-1)
        flat[::3] = 0
        m = int(np.abs(flat).max())
        p_zero = round(65536 * np.count_nonzero(flat == 0) / flat.size)
        model = bitstream.TensorModel(bitstream.SPARSE_LAPLACE, m, scale=float(np.float16(np.abs(flat[flat != 0]).mean())), p_zero=p_zero)
        records[sparse] = bitstream.TensorRecord(records[sparse].step, model)
    m = int(np.abs(symbols[0]).max())
    counts = np.bincount(symbols[0].reshape(-1) + m, minlength=2 * m + 1)
    records[0] = bitstream.TensorRecord(records[0].step, bitstream.TensorModel(bitstream.HISTOGRAM, m, counts=tuple(int(c) for c in counts)))
    records[-1] = bitstream.TensorRecord(records[-1].step, bitstream.TensorModel(bitstream.ZERO))
    return bitstream.write_file(bitstream.Header(**_header_fields(header), tensors=tuple(records)), symbols)


def _with_sampling(data: bytes, sampling: int) -> bytes:
    """The same latent-grid file re-written by the reference writer with another latent_sampling (4.1)."""
    import bitstream

    header, symbols = bitstream.read_file(data)
    fields = {**_header_fields(header), "latent_sampling": sampling}
    return bitstream.write_file(bitstream.Header(**fields, tensors=header.tensors), symbols)


def _recoded(data: bytes, kinds: tuple[int, ...]) -> bytes:
    """The same latent-grid file re-written by the reference writer with every latent grid's model re-chosen by
    the reference (6.3) among `kinds` only (the MLP's records kept)."""
    import bitstream

    header, symbols = bitstream.read_file(data)
    records = list(header.tensors)
    for i in range(header.latent_levels):
        records[i] = bitstream.TensorRecord(records[i].step, bitstream.choose_model(symbols[i], kinds=kinds))
    return bitstream.write_file(bitstream.Header(**_header_fields(header), tensors=tuple(records)), symbols)


def _as_version4(data: bytes) -> bytes:
    """A bilinear latent-grid file of version 2 or 3 framed as version 4 with latent_sampling = 0 (a file the
    reference writer never writes, 9, but readers accept, 3 / 4.1)."""
    head_len = struct.unpack_from("<H", data, 5)[0]
    head = data[7 : 7 + head_len]
    head = head[:16] + b"\x00" + head[16:]
    return _spec_file(4, head, data[7 + head_len + 4 : -4])


def _latent_k2_file() -> bytes:
    """A hand-made latent-grid file with 2 channels per grid (the encoder writes K = 1): FORMAT.md 4.2's
    example, 13 x 9, G = 3, K = 2, W = 6, L = 2, C = 3, with random symbols."""
    import bitstream

    rng = np.random.default_rng(7)
    shapes = spec_shapes(3, 6, 2, 3, width=13, height=9, latent_levels=3, latent_channels=2)
    symbols, records = [], []
    for i, shape in enumerate(shapes):
        latent = i < 3
        q = rng.integers(-8, 9, size=shape).astype(np.int32) if latent else rng.integers(-40, 41, size=shape).astype(np.int32)
        step = 2.0**-3 if latent else 2.0**-6
        symbols.append(q)
        records.append(bitstream.TensorRecord(step, bitstream.choose_model(q)))
    header = bitstream.Header(width=13, height=9, channels=3, arch=3, hidden_width=6, hidden_layers=2, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=3, latent_channels=2)
    return bitstream.write_file(header, symbols)


def spec_grid_classes(q: np.ndarray, n_classes: int) -> np.ndarray:
    """The context class (FORMAT.md 6.1) of every symbol of a (K, R, Q) grid."""
    above = np.zeros_like(q)
    above[:, 1:] = q[:, :-1]
    return np.stack([np.stack([spec_context_classes(row, n_classes) for row in channel]) for channel in above])


# the hand-made ROW_CONTEXT grid's class models, one per context class (FORMAT.md 4.3: kinds 0..3)
RC_CLASS_KINDS = (SPARSE_LAPLACE, ZERO, LAPLACE, HISTOGRAM, LAPLACE, SPARSE_LAPLACE)


def _row_context_grid(rng, shape: tuple[int, int, int]) -> np.ndarray:
    """Sparse small symbols, row by row, zero wherever the class model is ZERO; channel 1's first row all zero
    (a SPARSE_LAPLACE group whose flags are all 0, so no values are coded for it)."""
    q = np.zeros(shape, dtype=np.int32)
    zero_classes = [k for k, kind in enumerate(RC_CLASS_KINDS) if kind == ZERO]
    for ch in range(shape[0]):
        for r in range(1 if ch == 1 else 0, shape[1]):
            cls = spec_context_classes(q[ch, r - 1] if r else np.zeros(shape[2], np.int32), len(RC_CLASS_KINDS))
            row = np.where(rng.random(shape[2]) < 0.4, rng.choice([-3, -2, -1, -1, 1, 1, 2, 3], shape[2]), 0)
            row[np.isin(cls, zero_classes)] = 0
            q[ch, r] = row
    return q


def _class_model(kind: int, v: np.ndarray):
    """A class model of the given kind fitted to the class's symbols v (FORMAT.md 6.3's parameters)."""
    import bitstream

    m = max(1, int(np.abs(v).max(initial=0)))
    if kind == ZERO:
        assert not v.any()
        return bitstream.TensorModel(ZERO)
    if kind == HISTOGRAM:
        counts = np.bincount(v + m, minlength=2 * m + 1)
        return bitstream.TensorModel(HISTOGRAM, m, counts=tuple(int(c) for c in counts))
    nz = v[v != 0] if kind == SPARSE_LAPLACE else v
    scale = float(np.float16(max(float(np.abs(nz).mean()), 0.05)))
    if kind == LAPLACE:
        return bitstream.TensorModel(LAPLACE, m, scale=scale)
    p_zero = min(max(round(65536 * np.count_nonzero(v == 0) / v.size), 1), 65535)
    return bitstream.TensorModel(SPARSE_LAPLACE, m, scale=scale, p_zero=p_zero)


def _row_context_file() -> bytes:
    """FORMAT.md 4.2's 13 x 9, G = 3, K = 2 example again, its finest grid written by hand as ROW_CONTEXT with
    class models of every plain kind, so every branch of 6.1's group order is used."""
    import bitstream

    rng = np.random.default_rng(11)
    shapes = spec_shapes(3, 6, 2, 3, width=13, height=9, latent_levels=3, latent_channels=2)
    q = _row_context_grid(rng, shapes[0])
    cls = spec_grid_classes(q, len(RC_CLASS_KINDS))
    # coverage: every class occurs; every coded class has nonzero symbols; nonzero symbols in many rows of both
    # channels; a SPARSE_LAPLACE group with only zeros and one with nonzero values
    for k, kind in enumerate(RC_CLASS_KINDS):
        assert (cls == k).any() and (kind == ZERO or q[cls == k].any()), k
    assert all((q[ch] != 0).any(axis=1).sum() >= 5 for ch in range(2))
    groups = [q[ch, r][cls[ch, r] == k] for ch in range(2) for r in range(q.shape[1]) for k in (0, 5)]
    assert any(g.size and not g.any() for g in groups) and any(g.any() for g in groups)
    classes = tuple(_class_model(kind, q[cls == k]) for k, kind in enumerate(RC_CLASS_KINDS))
    symbols = [q] + [rng.integers(-8, 9, size=s).astype(np.int32) for s in shapes[1:3]]
    symbols += [rng.integers(-40, 41, size=s).astype(np.int32) for s in shapes[3:]]
    context = bitstream.TensorModel(bitstream.entropy.ROW_CONTEXT, classes=classes)
    records = [bitstream.TensorRecord(2.0**-2, context)]
    records += [bitstream.TensorRecord(2.0**-3 if i < 3 else 2.0**-6, bitstream.choose_model(symbols[i]))
                for i in range(1, len(shapes))]
    header = bitstream.Header(width=13, height=9, channels=3, arch=3, hidden_width=6, hidden_layers=2, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=3, latent_channels=2)
    return bitstream.write_file(header, symbols)


def _smooth_grid(rng, shape: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """A smooth random latent grid of integers, positive and negative: a random plane wave per channel plus a
    little noise (neighbouring latents alike, as ROW_PREDICT assumes)."""
    channels, rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    planes = [amplitude * np.sin(rng.uniform(0.5, 1.5) * 3.14 * x / cols + rng.uniform(0, 6.28))
              * np.cos(rng.uniform(0.5, 1.5) * 3.14 * y / rows + rng.uniform(0, 6.28)) for _ in range(channels)]
    return np.rint(np.stack(planes) + rng.normal(0.0, 0.7, shape)).astype(np.int32)


def _row_predict_file() -> bytes:
    """A latent-grid file (40 x 24, G = 2, K = 2) of smooth random grids: grid 0 coded with whatever the reference
    encoder's model choice (6.3) picks among the plain and row kinds (since version 5 its unrestricted choice is a
    neighbour kind), which must be ROW_PREDICT, grid 1 with a 16-class ROW_PREDICT model built directly (the
    reference's own per-class fit), the MLP with plain models."""
    import bitstream
    from bitstream.entropy import _context_model

    rng = np.random.default_rng(5)
    shapes = spec_shapes(3, 6, 2, 3, width=40, height=24, latent_levels=2, latent_channels=2)
    symbols = [_smooth_grid(rng, shapes[0], 40.0), _smooth_grid(rng, shapes[1], 25.0)]
    symbols += [rng.integers(-40, 41, size=s).astype(np.int32) for s in shapes[2:]]
    grid0 = bitstream.choose_model(symbols[0], kinds=PLAIN_KINDS + ROW_KINDS)
    assert grid0.kind == ROW_PREDICT, grid0.kind
    grid1, _ = _context_model(symbols[1], 16, None, ROW_PREDICT)
    assert grid1.kind == ROW_PREDICT and len(grid1.classes) == 16
    records = [bitstream.TensorRecord(2.0**-4, grid0), bitstream.TensorRecord(2.0**-3, grid1)]
    records += [bitstream.TensorRecord(2.0**-6, bitstream.choose_model(q)) for q in symbols[2:]]
    header = bitstream.Header(width=40, height=24, channels=3, arch=3, hidden_width=6, hidden_layers=2, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=2, latent_channels=2)
    return bitstream.write_file(header, symbols)


# the hand-made ROW_PREDICT grid's class models: every plain kind again, ZERO on class 3 this time (in class 1 the
# prediction is always 0, so a ZERO class there would only ever hold zeros; in class 3 it is q = pred, often not 0)
RP_CLASS_KINDS = (SPARSE_LAPLACE, LAPLACE, HISTOGRAM, ZERO, LAPLACE, SPARSE_LAPLACE)


def _row_predict_grid(rng, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(q, d) row by row as FORMAT.md 6.1's ROW_PREDICT codes it: sparse small differences d (zero wherever the
    class model is ZERO; channel 1's first row all zero), q = d + pred."""
    q, d = np.zeros(shape, dtype=np.int32), np.zeros(shape, dtype=np.int32)
    zero_classes = [k for k, kind in enumerate(RP_CLASS_KINDS) if kind == ZERO]
    for ch in range(shape[0]):
        for r in range(shape[1]):
            above = q[ch, r - 1] if r else np.zeros(shape[2], np.int32)
            cls = spec_context_classes(above, len(RP_CLASS_KINDS))
            row = np.where(rng.random(shape[2]) < 0.4, rng.choice([-3, -2, -1, -1, 1, 1, 2, 3], shape[2]), 0)
            row[np.isin(cls, zero_classes)] = 0
            if ch == 1 and r == 0:
                row[:] = 0
            d[ch, r] = row
            q[ch, r] = row + np.array(spec_row_prediction(above))
    return q, d


def _row_predict_classes_file() -> tuple[bytes, np.ndarray, np.ndarray]:
    """(file, q, d): FORMAT.md 4.2's 13 x 9, G = 3, K = 2 example, its finest grid written as ROW_PREDICT with class
    models of every plain kind (RP_CLASS_KINDS, fitted to each class's differences), so every branch of 6.1's group
    order is used on differences, including a ZERO class (q = pred there)."""
    import bitstream

    rng = np.random.default_rng(23)
    shapes = spec_shapes(3, 6, 2, 3, width=13, height=9, latent_levels=3, latent_channels=2)
    q, d = _row_predict_grid(rng, shapes[0])
    cls = spec_grid_classes(q, len(RP_CLASS_KINDS))
    for k, kind in enumerate(RP_CLASS_KINDS):  # every class occurs; every coded class has nonzero differences
        assert (cls == k).any() and (kind == ZERO or d[cls == k].any()), k
    assert (q[:, 1:] != d[:, 1:]).any() and (q < 0).any()  # the predictions are not all 0; negative values too
    assert (q[cls == RP_CLASS_KINDS.index(ZERO)] != 0).any()  # a ZERO class whose symbols are not 0 (q = pred)
    groups = [d[ch, r][cls[ch, r] == k] for ch in range(2) for r in range(q.shape[1]) for k in (0, 5)]
    assert any(g.size and not g.any() for g in groups) and any(g.any() for g in groups)  # SPARSE groups of both sorts
    classes = tuple(_class_model(kind, d[cls == k]) for k, kind in enumerate(RP_CLASS_KINDS))
    symbols = [q] + [rng.integers(-8, 9, size=s).astype(np.int32) for s in shapes[1:3]]
    symbols += [rng.integers(-40, 41, size=s).astype(np.int32) for s in shapes[3:]]
    predict = bitstream.TensorModel(ROW_PREDICT, classes=classes)
    records = [bitstream.TensorRecord(2.0**-2, predict)]
    records += [bitstream.TensorRecord(2.0**-3 if i < 3 else 2.0**-6, bitstream.choose_model(symbols[i]))
                for i in range(1, len(shapes))]
    header = bitstream.Header(width=13, height=9, channels=3, arch=3, hidden_width=6, hidden_layers=2, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=3, latent_channels=2)
    return bitstream.write_file(header, symbols), q, d


# the hand-made neighbour grids' class models (4.3: kinds 0..3), one per class. NEIGHBOUR_CONTEXT: ZERO on class 1
# (L = A = 0, |D| = 1), whose symbols are then all 0. NEIGHBOUR_PREDICT: ZERO on class 2 (|L| = 1 or |A| = 1 alone,
# or |D| = 2), where pred = floor((L + A + 1) / 2) is 1 when L or A is 1, so q = pred there is not always 0 (in
# classes 0 and 1, L = A = 0 and pred is always 0).
NC_CLASS_KINDS = (SPARSE_LAPLACE, ZERO, LAPLACE, HISTOGRAM, LAPLACE, SPARSE_LAPLACE, HISTOGRAM, LAPLACE)
NP_CLASS_KINDS = (SPARSE_LAPLACE, LAPLACE, ZERO, HISTOGRAM, LAPLACE, SPARSE_LAPLACE, HISTOGRAM, LAPLACE)


def spec_neighbour_grid(q: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(class, prediction) of every symbol of a (K, R, Q) grid under FORMAT.md 6.1's neighbour kinds. Both depend
    only on L, A and D, so they can be computed from the finished grid."""
    cls, pred = np.zeros(q.shape, dtype=np.int64), np.zeros(q.shape, dtype=np.int64)
    for ch, r, c in np.ndindex(*q.shape):
        left, above, above_left = spec_neighbours(q[ch], r, c)
        cls[ch, r, c] = spec_neighbour_class(left, above, above_left, n_classes)
        pred[ch, r, c] = spec_neighbour_prediction(left, above)
    return cls, pred


def _neighbour_grid(rng, shape: tuple[int, int, int], class_kinds: tuple[int, ...],
                    predict: bool) -> tuple[np.ndarray, np.ndarray]:
    """(q, d) as FORMAT.md 6.1's neighbour kinds code them: sparse small coded values d (zero wherever the class
    model is ZERO; channel 1's first row all zero), q = d (+ pred for NEIGHBOUR_PREDICT). Made in raster order,
    which like the anti-diagonal order has every position's L, A and D before it."""
    q, d = np.zeros(shape, dtype=np.int32), np.zeros(shape, dtype=np.int32)
    zero_classes = [k for k, kind in enumerate(class_kinds) if kind == ZERO]
    for ch, r, c in np.ndindex(*shape):
        left, above, above_left = spec_neighbours(q[ch], r, c)
        v = int(rng.choice([-3, -2, -1, -1, 1, 1, 2, 3])) if rng.random() < 0.4 else 0
        if spec_neighbour_class(left, above, above_left, len(class_kinds)) in zero_classes or (ch == 1 and r == 0):
            v = 0
        d[ch, r, c] = v
        q[ch, r, c] = v + (spec_neighbour_prediction(left, above) if predict else 0)
    return q, d


def _neighbour_file(kind: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(file, q, d): FORMAT.md 4.2's 13 x 9, G = 3, K = 2 example, version 5, its finest grid written by hand as
    `kind` (NEIGHBOUR_CONTEXT or NEIGHBOUR_PREDICT) with 8 class models of every plain kind (NC_ / NP_CLASS_KINDS,
    fitted to each class's coded values), so every branch of 6.1's group order is used, including a ZERO class;
    grid 1 with a 16-class model of the other neighbour kind and grid 2 with a 2-class model of this one (both the
    reference's own per-class fit), the MLP with plain models."""
    import bitstream
    from bitstream.entropy import _context_model

    predict = kind == NEIGHBOUR_PREDICT
    class_kinds = NP_CLASS_KINDS if predict else NC_CLASS_KINDS
    rng = np.random.default_rng(37 if predict else 31)
    shapes = spec_shapes(3, 6, 2, 3, width=13, height=9, latent_levels=3, latent_channels=2)
    q, d = _neighbour_grid(rng, shapes[0], class_kinds, predict)
    cls, pred = spec_neighbour_grid(q, len(class_kinds))
    assert np.array_equal(q - (pred if predict else 0), d)
    # coverage: every class occurs; every coded class has nonzero values; the ZERO class's symbols are all 0
    # (NEIGHBOUR_CONTEXT) or not (NEIGHBOUR_PREDICT: q = pred there); negative values; SPARSE_LAPLACE groups (class
    # 0 and 5 of an anti-diagonal) whose flags are all 0 and ones with nonzero values
    for k, sub_kind in enumerate(class_kinds):
        assert (cls == k).any() and (sub_kind == ZERO or d[cls == k].any()), k
    assert q[cls == class_kinds.index(ZERO)].any() == predict and (q < 0).any()
    if predict:
        assert (q != d).any()
    groups = [np.array([d[ch, r, c] for r, c in spec_anti_diagonal(t, 9, 13) if cls[ch, r, c] == k])
              for ch in range(2) for t in range(9 + 13 - 1) for k in (0, 5)]
    assert any(g.size and not g.any() for g in groups) and any(g.any() for g in groups)
    classes = tuple(_class_model(sub_kind, d[cls == k]) for k, sub_kind in enumerate(class_kinds))
    symbols = [q] + [rng.integers(-8, 9, size=s).astype(np.int32) for s in shapes[1:3]]
    symbols += [rng.integers(-40, 41, size=s).astype(np.int32) for s in shapes[3:]]
    other = NEIGHBOUR_CONTEXT if predict else NEIGHBOUR_PREDICT
    grid1, _ = _context_model(symbols[1], 16, None, other)
    grid2, _ = _context_model(symbols[2], 2, None, kind)
    assert (grid1.kind, len(grid1.classes), grid2.kind, len(grid2.classes)) == (other, 16, kind, 2)
    records = [bitstream.TensorRecord(2.0**-2, bitstream.TensorModel(kind, classes=classes)),
               bitstream.TensorRecord(2.0**-3, grid1), bitstream.TensorRecord(2.0**-3, grid2)]
    records += [bitstream.TensorRecord(2.0**-6, bitstream.choose_model(symbols[i])) for i in range(3, len(shapes))]
    header = bitstream.Header(width=13, height=9, channels=3, arch=3, hidden_width=6, hidden_layers=2, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=3, latent_channels=2)
    return bitstream.write_file(header, symbols), q, d


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    rgb = _encode(3, 0)
    poly = _encode(3, 2, "poly")
    latent = _encode(3, 3, "latent", sampling="bicubic")
    levels = latent[7 + 14]  # FORMAT.md 4.1: latent_levels; the first MLP weight follows the grids
    latent_rc = _encode(3, 3, "latent", size=(48, 64), sampling="bicubic")
    return {"rgb": rgb, "gray": _encode(1, 1), "all-models": _all_models_variant(rgb), "poly": poly,
            "poly-all-models": _all_models_variant(poly),
            "latent": latent, "latent-gray": _encode(1, 4, "latent", size=(13, 21)),
            "latent-all-models": _all_models_variant(latent, sparse=levels), "latent-k2": _latent_k2_file(),
            "latent-bilinear": _with_sampling(latent, 0), "latent-v4-bilinear": _as_version4(_with_sampling(latent, 0)),
            # big enough that the reference encoder codes its two finest grids with a class model (6.3); since
            # version 5 that is a neighbour kind (6 or 7), so this is the real encode that decodes them to pixels end
            # to end; "latent-rc-row" is the same encode with its grids' models re-chosen by the reference among the
            # plain and row kinds (ROW_PREDICT, kind 5, a version 4 file: it is bicubic)
            "latent-rc": latent_rc, "latent-rc-row": _recoded(latent_rc, PLAIN_KINDS + ROW_KINDS),
            "latent-row-context": _row_context_file(),
            "latent-row-predict": _row_predict_file(), "latent-row-predict-classes": _row_predict_classes_file()[0],
            "latent-neighbour-context": _neighbour_file(NEIGHBOUR_CONTEXT)[0],
            "latent-neighbour-predict": _neighbour_file(NEIGHBOUR_PREDICT)[0]}


def _reference_pixels(data: bytes, **size) -> np.ndarray:
    import codec

    arr = np.asarray(codec.decode(data, device="cpu", **size))
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def _compare(mine: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    assert mine.shape == ref.shape
    diff = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
    return int(diff.max()), float((diff == 0).mean())


def _arch_of(name: str) -> int:
    return 2 if name.startswith("poly") else 3 if name.startswith("latent") else 1


ALL_FILES = ["rgb", "gray", "all-models", "poly", "poly-all-models", "latent", "latent-gray", "latent-all-models",
             "latent-bilinear", "latent-v4-bilinear", "latent-k2", "latent-rc", "latent-rc-row", "latent-row-context",
             "latent-row-predict", "latent-row-predict-classes", "latent-neighbour-context", "latent-neighbour-predict"]


@pytest.mark.parametrize("name", ALL_FILES)
def test_independent_reader_matches_reference(files, name):
    import bitstream

    data = files[name]
    hdr, weights = spec_read(data)
    ref_weights = bitstream.dequantize(*bitstream.read_file(data))
    assert len(weights) == len(ref_weights)
    for mine, ref in zip(weights, ref_weights):
        assert mine.dtype == ref.dtype == np.float32 and mine.shape == ref.shape
        assert np.array_equal(mine.view(np.uint32), ref.view(np.uint32))
    assert hdr["arch"] == _arch_of(name)
    if name.endswith("all-models"):
        sparse = hdr["latent_levels"] if hdr["arch"] == 3 else 2
        assert [r["kind"] for r in hdr["records"]][0] == HISTOGRAM
        assert hdr["records"][-1]["kind"] == ZERO and LAPLACE in [r["kind"] for r in hdr["records"]]
        assert hdr["records"][sparse]["kind"] in (LAPLACE, SPARSE_LAPLACE)

    mine = spec_render(hdr, weights, hdr["width"], hdr["height"])
    max_diff, equal = _compare(mine, _reference_pixels(data))
    assert max_diff <= 1 and equal >= 0.99, (max_diff, equal)
    assert mine.shape[2] == hdr["channels"]


@pytest.mark.parametrize("name", ["rgb", "poly", "latent", "latent-gray", "latent-bilinear", "latent-k2", "latent-rc",
                                  "latent-row-context", "latent-row-predict", "latent-row-predict-classes",
                                  "latent-neighbour-context", "latent-neighbour-predict"])
def test_independent_render_at_other_sizes(files, name):
    hdr, weights = spec_read(files[name])
    for w, h in ((7, 5), (41, 23)):
        max_diff, equal = _compare(spec_render(hdr, weights, w, h), _reference_pixels(files[name], size=(w, h)))
        assert max_diff <= 1 and equal >= 0.99, (w, h, max_diff, equal)


def test_versions_and_latent_header(files):
    """FORMAT.md 3 / 9: a file with a kind-6 or kind-7 record is version 5, else a bicubic latent-grid file is
    version 4 (both with three extra fields), else a file with a kind-5 record is version 3, other latent-grid files
    are version 2 (both with two extra fields); every other file stays version 1. "latent" and "latent-rc" are
    bicubic encodes, "latent-gray" a bilinear one."""
    for name in ALL_FILES:
        hdr, _ = spec_read(files[name])
        kinds = [r["kind"] for r in hdr["records"]]
        neighbour = bool(set(NEIGHBOUR_KINDS) & set(kinds))
        predict = ROW_PREDICT in kinds
        bicubic = hdr.get("latent_sampling") == 1
        expected = (5 if neighbour else 4 if bicubic or name == "latent-v4-bilinear" else 3 if predict
                    else 2 if hdr["arch"] == 3 else 1)
        assert files[name][4] == hdr["version"] == expected, name
        assert bicubic == (name in ("latent", "latent-all-models", "latent-rc", "latent-rc-row")), name
        if hdr["arch"] == 3 and hdr["version"] >= 4:  # 4.1: the records start after latent_sampling, at header offset 17
            assert hdr["records"][0]["offset"] == 17, name
        assert hdr["arch"] == _arch_of(name), name
        if hdr["arch"] == 3:
            assert hdr["omega0"] == 1.0
            assert 1 <= hdr["latent_levels"] <= 12 and 1 <= hdr["latent_channels"] <= 8
    hdr, weights = spec_read(files["latent-k2"])
    assert (hdr["latent_levels"], hdr["latent_channels"]) == (3, 2)
    # FORMAT.md 4.2's worked example
    assert [w.shape for w in weights] == [(2, 9, 13), (2, 5, 7), (2, 3, 4), (6, 6), (6,), (6, 6), (6,), (3, 6), (3,)]
    assert sum(w.size for w in weights) == 433
    assert sum(np.prod(s) for s in spec_shapes(1, 8, 2, 3)) == 123
    assert sum(np.prod(s) for s in spec_shapes(2, 8, 3, 3)) == 243


def test_spec_sample_hits_cell_centres():
    """FORMAT.md 8.1: a grid returns its own values at its own cell centres (bilinear and bicubic), the border
    value outside them (bilinear); bicubic weights sum to 1 and are symmetric halfway between cells."""
    grid = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    yy, xx = np.meshgrid(spec_axis(3), spec_axis(5), indexing="ij")
    p = np.stack([xx.reshape(-1), yy.reshape(-1)], axis=1)
    for sampling in (0, 1):
        assert np.array_equal(spec_sample(grid, p, sampling), grid.reshape(2, -1).T)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0]], dtype=np.float32)
    assert np.array_equal(spec_sample(grid, corners), grid[:, [0, -1], [0, -1]].T)
    rng = np.random.default_rng(3)
    anywhere = rng.uniform(-1.2, 1.2, size=(50, 2)).astype(np.float32)
    flat = np.full((1, 4, 9), 2.5, dtype=np.float32)  # the 16 weights sum to 1
    assert np.allclose(spec_sample(flat, anywhere, 1), 2.5, atol=1e-5)
    ramp = np.arange(9, dtype=np.float32)[None, None, :].repeat(4, axis=1)  # value = column index
    halfway = np.array([[(2 * 3.5 + 1) / 9 - 1, 0.0]], dtype=np.float32)  # between columns 3 and 4: symmetric taps
    assert spec_sample(ramp, halfway, 1)[0, 0] == pytest.approx(3.5, abs=1e-5)


def test_spec_bicubic_is_grid_sample():
    """FORMAT.md 8.1: bicubic sampling is torch's grid_sample(mode="bicubic", padding_mode="border",
    align_corners=False), also near and past the borders, where the position is not clamped."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for shape in ((2, 5, 7), (1, 1, 3), (1, 2, 1)):
        grid = rng.normal(size=shape).astype(np.float32)
        p = rng.uniform(-1.2, 1.2, size=(400, 2)).astype(np.float32)
        ref = torch.nn.functional.grid_sample(torch.from_numpy(grid)[None], torch.from_numpy(p).reshape(1, 1, -1, 2),
                                              mode="bicubic", padding_mode="border", align_corners=False)
        assert np.abs(spec_sample(grid, p, 1) - ref[0, :, 0].T.numpy()).max() < 1e-5


def _refit_crc(data: bytes | bytearray) -> bytes:
    data = bytearray(data)
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])) & 0xFFFFFFFF)
    return bytes(data)


def _patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, value)
    return _refit_crc(data)


def test_independent_reader_checks_version_and_latent_fields(files):
    """FORMAT.md 7 steps 3 and 8, checked by both readers: version, arch per version, omega0, latent-field ranges."""
    import bitstream

    latent, siren = files["latent"], files["rgb"]
    assert latent[4] == 4 and latent[7 + 16] == 1  # bicubic: version 4, latent_sampling 1
    bad = {
        "version 6": _patched(latent, 4, "<B", 6),
        "version 255": _patched(latent, 4, "<B", 255),
        "version 0": _patched(latent, 4, "<B", 0),
        "arch 3 in version 1": _patched(latent, 4, "<B", 1),
        "arch 4": _patched(latent, 7 + 5, "<B", 4),
        "latent omega0": _patched(latent, 7 + 9, "<f", 30.0),
        "latent_levels 0": _patched(latent, 7 + 14, "<B", 0),
        "latent_levels 13": _patched(latent, 7 + 14, "<B", 13),
        "latent_channels 0": _patched(latent, 7 + 15, "<B", 0),
        "latent_channels 9": _patched(latent, 7 + 15, "<B", 9),
        "latent_sampling 2": _patched(latent, 7 + 16, "<B", 2),
        "latent_sampling 255": _patched(latent, 7 + 16, "<B", 255),
        "poly omega0": _patched(files["poly"], 7 + 9, "<f", 30.0),
        "siren omega0 nan": _patched(siren, 7 + 9, "<f", float("nan")),
    }
    # an arch-3 header that stops right after init_id (the latent-grid fields missing)
    cut = bytearray(latent[: 7 + 14]) + struct.pack("<I", 0) + bytes(4)
    struct.pack_into("<H", cut, 5, 14)
    bad["latent fields missing"] = _refit_crc(cut)
    # a version 4 arch-3 header that stops right after latent_channels (latent_sampling missing)
    cut = bytearray(latent[: 7 + 16]) + struct.pack("<I", 0) + bytes(4)
    struct.pack_into("<H", cut, 5, 16)
    bad["latent_sampling missing"] = _refit_crc(cut)
    for what, data in bad.items():
        with pytest.raises(SpecError):
            spec_read(data)
        with pytest.raises(bitstream.InrFormatError):
            bitstream.read_file(data)
    # a version 2 decoder reads both versions, and version 2 holds architectures 1..3 (9)
    hdr, weights = spec_read(_patched(siren, 4, "<B", 2))
    assert hdr["version"] == 2 and hdr["arch"] == 1
    assert bitstream.read_file(_patched(siren, 4, "<B", 2))[0].arch == 1
    # 3: "readers accept architectures 1 and 2 in any version, architecture 3 only in versions 2 to 5"; 7 step 3
    # accepts version 3 whatever the records, so a version 3 file without a kind-5 record is read (writers never
    # write one: 1 / 9)
    for data in (siren, files["poly"], files["latent-bilinear"], files["latent-row-context"]):
        v3 = _patched(data, 4, "<B", 3)
        hdr, weights = spec_read(v3)
        assert hdr["version"] == 3 and ROW_PREDICT not in [r["kind"] for r in hdr["records"]]
        ref = bitstream.dequantize(*bitstream.read_file(v3))
        assert all(np.array_equal(m.view(np.uint32), r.view(np.uint32)) for m, r in zip(weights, ref))
    # likewise a version 5 file without a kind-6 or kind-7 record is read (1: "readers accept any file of versions
    # 1-5 whose contents that version allows"); its latent-grid header carries latent_sampling as version 4's (4.1)
    for data in (siren, files["poly"], latent, files["latent-v4-bilinear"], files["latent-rc-row"]):
        v5 = _patched(data, 4, "<B", 5)
        hdr, weights = spec_read(v5)
        assert hdr["version"] == 5 and not set(NEIGHBOUR_KINDS) & {r["kind"] for r in hdr["records"]}
        assert hdr.get("latent_sampling", 0) == bitstream.read_header(v5).latent_sampling
        ref = bitstream.dequantize(*bitstream.read_file(v5))
        assert all(np.array_equal(m.view(np.uint32), r.view(np.uint32)) for m, r in zip(weights, ref))


def test_independent_reader_rejects_corruption(files):
    data = bytearray(files["rgb"])
    data[20] ^= 0x01
    with pytest.raises(SpecError, match="crc"):
        spec_read(bytes(data))
    with pytest.raises(SpecError):
        spec_read(files["rgb"] + b"\0")


def _assert_same_records_and_symbols(data: bytes, hdr: dict, symbols: list) -> None:
    """This reader's header fields, tensor records (class models included) and symbols of `data` equal the reference's."""
    import bitstream

    ref_header, ref_symbols = bitstream.read_file(data)
    assert {k: hdr[k] for k in _header_fields(ref_header)} == _header_fields(ref_header)
    assert len(hdr["records"]) == len(ref_header.tensors) == len(symbols) == len(ref_symbols)
    for rec, ref_rec in zip(hdr["records"], ref_header.tensors):
        assert rec["step"] == ref_rec.step and rec["kind"] == ref_rec.model.kind
        if rec["kind"] in CLASS_KINDS:
            assert [_model_fields(c) for c in rec["classes"]] == [_ref_model_fields(c) for c in ref_rec.model.classes]
        else:
            assert _model_fields(rec) == _ref_model_fields(ref_rec.model)
    for mine, ref in zip(symbols, ref_symbols):
        assert mine.shape == ref.shape and np.array_equal(mine, ref)


def _assert_both_reject(bad: dict) -> None:
    """Each case, name -> (file, this reader's message pattern, the reference's): both readers reject the file."""
    import bitstream

    for what, (data, mine, ref) in bad.items():
        with pytest.raises(SpecError, match=mine):
            spec_read(data)
        with pytest.raises(bitstream.InrFormatError, match=ref):
            bitstream.read_file(data)


def test_row_context_files(files):
    """FORMAT.md 4.3 / 6.1: the real encode's grids re-coded with the reference's choice among the plain and row
    kinds, and the hand-made row-kind grids, as both readers see them."""
    import bitstream

    names = {ROW_CONTEXT: "row-context", ROW_PREDICT: "row-predict", NEIGHBOUR_CONTEXT: "neighbour-context",
             NEIGHBOUR_PREDICT: "neighbour-predict"}
    for name, grids in (("latent-rc-row", 2), ("latent-row-context", 1), ("latent-row-predict", 2),
                        ("latent-row-predict-classes", 1)):
        hdr, weights = spec_read(files[name])
        ref = bitstream.read_header(files[name]).to_dict()["tensors"]
        kinds = [r["kind"] for r in hdr["records"]]
        assert all(k in ROW_KINDS for k in kinds[:grids]), (name, kinds)
        assert not set(NEIGHBOUR_KINDS) & set(kinds), (name, kinds)
        assert not set(CLASS_KINDS) & set(kinds[hdr["latent_levels"]:])  # never on an MLP tensor
        for rec, info in zip(hdr["records"], ref):
            assert info["model"] == names.get(rec["kind"], info["model"])
            assert (info["model"] in names.values()) == (rec["kind"] in CLASS_KINDS)
            if rec["kind"] in CLASS_KINDS:
                assert 2 <= len(rec["classes"]) == len(info["classes"]) <= 16
    hdr, weights = spec_read(files["latent-row-context"])
    rec = hdr["records"][0]
    assert tuple(c["kind"] for c in rec["classes"]) == RC_CLASS_KINDS
    q = np.rint(weights[0] / np.float32(rec["step"])).astype(np.int32)
    assert q.shape == (2, 9, 13) and all((q[ch] != 0).any(axis=1).sum() >= 5 for ch in range(2))
    # the classes of a row depend on the row above only (6.1): a worked row
    assert spec_context_classes(np.array([0, 3, 0, 0, -1]), 6).tolist() == [3, 5, 3, 1, 2]
    assert spec_context_classes(np.zeros(4, np.int32), 2).tolist() == [0, 0, 0, 0]


def test_row_context_records_are_checked(files):
    """FORMAT.md 4.3 / 7 step 10.4, checked by both readers: kind 4 only on rank-3 tensors, n_classes 2..16,
    class kinds 0..3."""
    import bitstream
    from benchmarks.robustness.fuzz_inr import fix_crc

    def patched(data: bytes, head_offset: int, value: int) -> bytes:
        data = bytearray(data)
        data[7 + head_offset] = value
        return fix_crc(bytes(data))

    rc = files["latent-row-context"]
    hdr, _ = spec_read(rc)
    grid, mlp = hdr["records"][0], hdr["records"][hdr["latent_levels"]]
    assert grid["kind"] == ROW_CONTEXT and len(grid["classes"]) == 6
    siren = spec_read(files["rgb"])[0]["records"][0]
    latent_hdr, _ = spec_read(files["latent"])
    latent_mlp = latent_hdr["records"][latent_hdr["latent_levels"]]
    rank, classes = ("not rank 3", "only latent grids"), ("n_classes", "classes' = ")
    class_kind = ("class model kind", "not a plain model")
    bad = {  # what: (file, why my reader rejects it, why the reference does)
        "kind 4 on a latent MLP weight": (patched(rc, mlp["offset"] + 2, ROW_CONTEXT), *rank),
        "kind 4 on the encoder's MLP": (patched(files["latent"], latent_mlp["offset"] + 2, ROW_CONTEXT), *rank),
        "kind 4 on a SIREN weight": (patched(files["rgb"], siren["offset"] + 2, ROW_CONTEXT), *rank),
        "n_classes 1": (patched(rc, grid["offset"] + 3, 1), *classes),
        "n_classes 17": (patched(rc, grid["offset"] + 3, 17), *classes),
        "n_classes 0": (patched(rc, grid["offset"] + 3, 0), *classes),
        "class kind 4": (patched(rc, grid["classes"][0]["offset"], 4), *class_kind),
        "class kind 5": (patched(rc, grid["classes"][0]["offset"], 5), *class_kind),
        "class kind 6": (patched(rc, grid["classes"][0]["offset"], 6), *class_kind),
        "class kind 7": (patched(rc, grid["classes"][0]["offset"], 7), *class_kind),
        "last class kind 4": (patched(rc, grid["classes"][-1]["offset"], 4), *class_kind),
        # 7 step 10.4: kind 5 in a version 2 file (this one is version 2) is rejected right after the step check,
        # and so are kinds 6 and 7 (version 5)
        "grid kind 5 in version 2": (patched(rc, grid["offset"] + 2, ROW_PREDICT), *("needs format version 3",) * 2),
        "grid kind 6 in version 2": (patched(rc, grid["offset"] + 2, 6), *("needs format version 5",) * 2),
        "grid kind 7 in version 2": (patched(rc, grid["offset"] + 2, 7), *("needs format version 5",) * 2),
        "grid kind 8": (patched(rc, grid["offset"] + 2, 8), "model kind", "not a known model"),
    }
    _assert_both_reject(bad)


# --- ROW_PREDICT (kind 5, format version 3) -----------------------------------------------------------

PREDICT_FILES = ["latent-rc-row", "latent-row-predict", "latent-row-predict-classes"]


def _model_fields(rec: dict) -> dict:
    return {k: (tuple(v) if k == "counts" else v) for k, v in rec.items() if k in ("kind", "max_abs", "scale", "p_zero", "counts")}


def _ref_model_fields(model) -> dict:
    out = {"kind": model.kind}
    if model.kind in (LAPLACE, HISTOGRAM, SPARSE_LAPLACE):
        out["max_abs"] = model.max_abs
    if model.kind in (LAPLACE, SPARSE_LAPLACE):
        out["scale"] = model.scale
    if model.kind == SPARSE_LAPLACE:
        out["p_zero"] = model.p_zero
    if model.kind == HISTOGRAM:
        out["counts"] = tuple(model.counts)
    return out


def test_row_prediction_worked_rows():
    """FORMAT.md 6.1: pred[c] = floor((s[c-1] + 2 s[c] + s[c+1] + 2) / 4), signed, 0 off the ends, floor towards -inf."""
    assert spec_row_prediction([0, 0, 0]) == [0, 0, 0]
    assert spec_row_prediction([-1, -1, 5, 0, 2]) == [-1, 1, 2, 2, 1]  # (0 - 2 - 1 + 2) / 4 = -0.25 -> -1, not 0
    assert spec_row_prediction([1, 1, -5, 0, -2]) == [1, 0, -2, -2, -1]  # (0 + 2 + 1 + 2) / 4 = 1.25 -> 1
    assert spec_row_prediction([7]) == [4] and spec_row_prediction([-7]) == [-3]  # (14 + 2) / 4, (-14 + 2) / 4
    assert spec_row_prediction([30000] * 3) == [22500, 30000, 22500]
    assert spec_row_prediction([-30000] * 3) == [-22500, -30000, -22500]  # -89998 / 4 = -22499.5 -> -22500


@pytest.mark.parametrize("name", PREDICT_FILES)
def test_row_predict_files_match_reference(files, name):
    """FORMAT.md 3 / 4.3 / 6.1: version 3 files with kind-5 records (version 4 where the grids are bicubic), written
    by the reference (its model choice among the plain and row kinds, on a real encode's grids and on smooth random
    ones, its per-class fit, a hand-made grid), decode to the reference's integer symbols and header exactly."""
    import bitstream

    data = files[name]
    hdr, symbols = spec_decode(data)
    assert data[4] == hdr["version"] == (4 if hdr["latent_sampling"] == 1 else 3)
    kinds = [r["kind"] for r in hdr["records"]]
    assert ROW_PREDICT in kinds, kinds
    _assert_same_records_and_symbols(data, hdr, symbols)
    # what each class model coded is the difference from the prediction (6.1): it lies in the class model's range,
    # and is 0 throughout a ZERO class
    for rec, q in zip(hdr["records"], symbols):
        if rec["kind"] != ROW_PREDICT:
            continue
        above = np.zeros_like(q)
        above[:, 1:] = q[:, :-1]
        pred = np.array([[spec_row_prediction(row) for row in channel] for channel in above])
        d, cls = q - pred, spec_grid_classes(q, len(rec["classes"]))
        assert np.abs(q).max() <= SYMBOL_LIMIT
        for k, sub in enumerate(rec["classes"]):
            assert np.abs(d[cls == k]).max(initial=0) <= sub.get("max_abs", 0), (k, sub["kind"])
    if name == "latent-row-predict-classes":
        _, q, d = _row_predict_classes_file()
        assert np.array_equal(symbols[0], q) and tuple(c["kind"] for c in hdr["records"][0]["classes"]) == RP_CLASS_KINDS
    if name == "latent-rc-row":  # the real encode's grids, the reference choosing among kinds 0..5 (6.3): both of
        assert kinds[:2] == [ROW_PREDICT] * 2, kinds  # its coded grids use ROW_PREDICT


def _spec_file(version: int, head: bytes, payload: bytes = b"") -> bytes:
    """A file framed by hand (FORMAT.md 3)."""
    body = MAGIC + struct.pack("<BH", version, len(head)) + head + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


# a 3 x 2 grayscale latent-grid network: one (1, 2, 3) grid, then an MLP of width 1 (shapes (1,1), (1,), (1,1), (1,))
TINY_FIELDS = struct.pack(FIXED, 3, 2, 1, 3, 1, 1, 1.0, 0) + struct.pack(LATENT_FIELDS, 1, 1)
TINY_ZERO_MLP = struct.pack("<eB", 1.0, ZERO) * 4


def _overflow_file(top: int) -> bytes:
    """A tiny ROW_PREDICT file whose row 1, column 0 decodes to `top`: row 0 is 30000 everywhere (class 0's
    differences), so row 1's predictions are [22500, 30000, 22500] and its differences [top - 22500, 0, 0]
    (class 1), both classes LAPLACE with max_abs up to 32767. The reference writer refuses values beyond
    +-32767, so the header is the reference's and the payload the same differences coded as ROW_CONTEXT
    (whose classes match here: row 0 has nothing above, row 1's are all 1)."""
    import bitstream
    from bitstream.entropy import ROW_CONTEXT, encode_tensors
    from bitstream.header import pack_header

    sign = 1 if top > 0 else -1
    q = np.array([[[30000] * 3, [top, 30000, 22500]]], dtype=np.int32) * np.int32(sign)
    q[0, 1, 0] = top
    classes = (bitstream.TensorModel(LAPLACE, 30000, scale=4096.0), bitstream.TensorModel(LAPLACE, 32767, scale=4096.0))
    records = [bitstream.TensorRecord(2.0**-15, bitstream.TensorModel(ROW_PREDICT, classes=classes))]
    records += [bitstream.TensorRecord(1.0, bitstream.TensorModel(ZERO))] * 4
    header = bitstream.Header(width=3, height=2, channels=1, arch=3, hidden_width=1, hidden_layers=1, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=1, latent_channels=1)
    diffs = q - np.array([[[0] * 3, [22500, 30000, 22500]]], dtype=np.int32) * np.int32(sign)
    payload = encode_tensors([diffs], [bitstream.TensorModel(ROW_CONTEXT, classes=classes)])
    data = _spec_file(3, pack_header(header), payload)
    if abs(top) <= 32767:  # the reference writer makes the same bytes
        zeros = [np.zeros(s, dtype=np.int32) for s in ((1, 1), (1,), (1, 1), (1,))]
        assert bitstream.write_file(header, [q] + zeros) == data
    else:
        with pytest.raises(ValueError, match="exceeds the format's limit"):
            bitstream.write_file(header, [q] + [np.zeros(s, dtype=np.int32) for s in ((1, 1), (1,), (1, 1), (1,))])
    assert data[4] == 3 and data[7:7 + len(TINY_FIELDS)] == TINY_FIELDS
    return data


# (file maker, kind, where the large value lands): ROW_PREDICT's row 1 column 0, NEIGHBOUR_PREDICT's (1, 1)
PREDICT_OVERFLOW = {"row": (lambda top: _overflow_file(top), ROW_PREDICT, (0, 1, 0)),
                    "neighbour": (lambda top: _neighbour_overflow_file(top), NEIGHBOUR_PREDICT, (0, 1, 1))}


@pytest.mark.parametrize("model", sorted(PREDICT_OVERFLOW))
@pytest.mark.parametrize("top", [32767, -32767])
def test_predicted_values_up_to_32767(model, top):
    """FORMAT.md 6.1: decoded values of exactly +-32767 are valid (both readers, same symbols), for ROW_PREDICT
    and NEIGHBOUR_PREDICT."""
    import bitstream

    make, kind, where = PREDICT_OVERFLOW[model]
    data = make(top)
    hdr, symbols = spec_decode(data)
    assert hdr["records"][0]["kind"] == kind and symbols[0][where] == top
    assert np.array_equal(symbols[0], bitstream.read_file(data)[1][0])


@pytest.mark.parametrize("model", sorted(PREDICT_OVERFLOW))
@pytest.mark.parametrize("top", [32768, -32768, 52767])
def test_predicted_values_beyond_32767_are_rejected(model, top):
    """FORMAT.md 6.1 / 7 step 12: a ROW_PREDICT or NEIGHBOUR_PREDICT value beyond +-32767 (here a difference
    within its class model's max_abs added to a large prediction) is an error, in both readers."""
    import bitstream

    data = PREDICT_OVERFLOW[model][0](top)
    with pytest.raises(SpecError, match="beyond"):
        spec_decode(data)
    with pytest.raises(bitstream.InrFormatError, match="beyond"):
        bitstream.read_file(data)


def test_row_predict_records_are_checked(files):
    """FORMAT.md 3 / 4.3 / 7 steps 3, 8 and 10.4, checked by both readers: kind 5 only in version 3, after the step
    check; only on rank-3 tensors; n_classes 2..16; class kinds 0..3; not every class ZERO."""
    import bitstream

    rp = files["latent-row-predict"]
    hdr, _ = spec_read(rp)
    grid, mlp = hdr["records"][0], hdr["records"][hdr["latent_levels"]]
    assert grid["kind"] == ROW_PREDICT and len(grid["classes"]) == 6

    def patched(head_offset: int, fmt: str, value) -> bytes:
        return _patched(rp, 7 + head_offset, fmt, value)

    version3, rank = ("needs format version 3",) * 2, ("not rank 3", "only latent grids")
    classes, class_kind = ("n_classes", "classes' = "), ("class model kind", "not a plain model")
    all_zero = ("every class model is ZERO", "all zero")
    kind5_in_v2 = _patched(rp, 4, "<B", 2)  # the version byte 3 -> 2 (and the CRC refitted)
    bad = {  # what: (file, why my reader rejects it, why the reference does)
        "kind 5 in a version 2 file": (kind5_in_v2, *version3),
        "kind 5 in a version 1 file": (_patched(rp, 4, "<B", 1), "needs format version 2", "needs format version 2"),
        # 7 step 10.4: the step is checked first, then the version
        "kind 5 in version 2, bad step": (_patched(kind5_in_v2, 7 + grid["offset"], "<e", 0.0), "step", "step"),
        "kind 5 on a latent MLP weight": (patched(mlp["offset"] + 2, "<B", ROW_PREDICT), *rank),
        "kind 5 on the encoder's MLP": (_patched(files["latent-rc"], 7 + spec_read(files["latent-rc"])[0]["records"][-2]
                                                 ["offset"] + 2, "<B", ROW_PREDICT), *rank),
        "kind 5 n_classes 1": (patched(grid["offset"] + 3, "<B", 1), *classes),
        "kind 5 n_classes 17": (patched(grid["offset"] + 3, "<B", 17), *classes),
        "kind 5 class kind 4": (patched(grid["classes"][0]["offset"], "<B", ROW_CONTEXT), *class_kind),
        "kind 5 class kind 5": (patched(grid["classes"][-1]["offset"], "<B", ROW_PREDICT), *class_kind),
        "kind 5, every class ZERO": (_spec_file(3, TINY_FIELDS + struct.pack("<eBBBB", 1.0, ROW_PREDICT, 2, 0, 0)
                                                + TINY_ZERO_MLP), *all_zero),
        "kind 4, every class ZERO": (_spec_file(2, TINY_FIELDS + struct.pack("<eBBBB", 1.0, ROW_CONTEXT, 2, 0, 0)
                                                + TINY_ZERO_MLP), *all_zero),
        "kind 6 in version 3": (patched(grid["offset"] + 2, "<B", 6), *("needs format version 5",) * 2),
        "kind 7 in version 3": (patched(grid["offset"] + 2, "<B", 7), *("needs format version 5",) * 2),
        "kind 8 in version 3": (patched(grid["offset"] + 2, "<B", 8), "model kind", "not a known model"),
    }
    _assert_both_reject(bad)


# --- NEIGHBOUR_CONTEXT and NEIGHBOUR_PREDICT (kinds 6 and 7, format version 5) -------------------------

NEIGHBOUR_FILES = ["latent-rc", "latent-neighbour-context", "latent-neighbour-predict"]


def test_neighbour_prediction_and_classes_worked_values():
    """FORMAT.md 6.1: class = min(2|L| + 2|A| + |D|, n_classes - 1) and pred = floor((L + A + 1) / 2), signed, floor
    towards -inf; anti-diagonal t's positions top to bottom (the 2 x 3 example). The reference's functions agree."""
    from bitstream.entropy import neighbour_classes, neighbour_prediction

    pred = spec_neighbour_prediction
    assert pred(0, 0) == 0 and pred(1, 0) == 1 and pred(0, 1) == 1 and pred(2, 3) == 3 and pred(3, 4) == 4
    assert pred(-1, -2) == -1  # (-1 + -2 + 1) / 2 = -1 exactly
    assert pred(-1, 0) == 0 and pred(0, -1) == 0  # (-1 + 0 + 1) / 2 = 0
    assert pred(-2, 0) == -1 and pred(-3, -4) == -3  # -1 / 2 = -0.5 -> -1, not 0; -6 / 2
    assert pred(-5, 2) == -1 and pred(5, -2) == 2  # -2 / 2; 4 / 2
    assert pred(32767, 32767) == 32767 and pred(-32767, -32767) == -32767  # -65533 / 2 = -32766.5 -> -32767
    cls = spec_neighbour_class
    assert cls(0, 0, 0, 8) == 0 and cls(0, 0, -1, 8) == 1 and cls(1, 0, 0, 8) == 2 and cls(0, -1, 0, 8) == 2
    assert cls(0, 0, 2, 8) == 2 and cls(-1, 1, -1, 8) == 5 and cls(3, 0, 0, 8) == 6 and cls(0, -4, 0, 8) == 7
    assert cls(0, 0, 1, 2) == 1 and cls(5, 5, 5, 16) == 15 and cls(1, 1, 1, 16) == 5 and cls(0, 0, 30000, 8) == 7
    rng = np.random.default_rng(9)
    left, above, above_left = (rng.integers(-40, 41, size=500) for _ in range(3))
    for n in (2, 8, 16):
        assert neighbour_classes(left, above, above_left, n).tolist() == [
            cls(int(a), int(b), int(c), n) for a, b, c in zip(left, above, above_left)]
    assert neighbour_prediction(left, above).tolist() == [pred(int(a), int(b)) for a, b in zip(left, above)]
    # the order of 6.1's worked example, a 2 x 3 grid: (0,0); (0,1), (1,0); (0,2), (1,1); (1,2)
    assert [spec_anti_diagonal(t, 2, 3) for t in range(2 + 3 - 1)] == [
        [(0, 0)], [(0, 1), (1, 0)], [(0, 2), (1, 1)], [(1, 2)]]
    assert [spec_anti_diagonal(t, 3, 2) for t in range(3 + 2 - 1)] == [
        [(0, 0)], [(0, 1), (1, 0)], [(1, 1), (2, 0)], [(2, 1)]]
    assert [spec_anti_diagonal(t, 1, 3) for t in range(3)] == [[(0, 0)], [(0, 1)], [(0, 2)]]
    assert [spec_anti_diagonal(t, 3, 1) for t in range(3)] == [[(0, 0)], [(1, 0)], [(2, 0)]]


# a 3 x 3 grid worked by hand (FORMAT.md 6.1, n_classes = 8): its coded symbols anti-diagonal by anti-diagonal, on
# each the groups (class, positions top to bottom) in increasing class. On anti-diagonal 2, (2,0) (class 0: all
# its neighbours are 0) comes before (0,2) and (1,1) (class 4: L = 2, resp. A = 2), so a group is not a position
# range; (2,2) is in class 2 (L = -1), whose model is ZERO (its one value is 0).
WORKED_Q = [[0, 2, 1], [0, 0, 0], [5, -1, 0]]
WORKED_ORDER = [[(0, [(0, 0)])], [(0, [(0, 1), (1, 0)])], [(0, [(2, 0)]), (4, [(0, 2), (1, 1)])],
                [(4, [(1, 2)]), (7, [(2, 1)])], [(2, [(2, 2)])]]
# NEIGHBOUR_PREDICT's d = q - floor((L + A + 1) / 2) for the same grid, e.g. (2,1): L = 5, A = 0, pred = 3, d = -4
WORKED_D = [[0, 2, 0], [0, -1, -1], [5, -4, 0]]
# (class -> (max_abs, scale)) of the LAPLACE class models; every other class ZERO
WORKED_MODELS = {NEIGHBOUR_CONTEXT: {0: (5, 2.0), 4: (1, 0.5), 7: (1, 0.5)},
                 NEIGHBOUR_PREDICT: {0: (5, 2.0), 4: (1, 0.5), 7: (4, 1.0)}}


@pytest.mark.parametrize("kind", NEIGHBOUR_KINDS)
def test_neighbour_worked_grid_order(kind):
    """FORMAT.md 6.1: the hand-worked 3 x 3 grid's groups, coded with constriction in exactly that order (one encode
    call per group, none for a ZERO class), are the reference writer's payload byte for byte, and both readers
    decode that file back to the grid."""
    import bitstream

    q = np.array(WORKED_Q, dtype=np.int32)
    predict = kind == NEIGHBOUR_PREDICT
    cls, pred = spec_neighbour_grid(q[None], 8)
    assert np.array_equal(q - pred[0], np.array(WORKED_D)) and (pred[0] != 0).any()
    coded = np.array(WORKED_D if predict else WORKED_Q)
    for t, groups in enumerate(WORKED_ORDER):
        positions = spec_anti_diagonal(t, 3, 3)
        assert groups == [(k, [p for p in positions if cls[0][p] == k]) for k in range(8)
                          if any(cls[0][p] == k for p in positions)], t
        assert [cls[0][p] for p in positions] == [spec_neighbour_class(*spec_neighbours(q, *p), 8) for p in positions]
    models = WORKED_MODELS[kind]
    assert not coded[cls[0] == 2].any()  # class 2 is ZERO
    encoder = constriction.stream.queue.RangeEncoder()
    for groups in WORKED_ORDER:
        for k, positions in groups:
            if k in models:
                m, scale = models[k]
                values = np.array([coded[p] for p in positions], dtype=np.int32)
                encoder.encode(values, constriction.stream.model.QuantizedLaplace(-m, m, 0.0, scale))
    payload = encoder.get_compressed().astype("<u4").tobytes()
    record = struct.pack("<eBB", 1.0, kind, 8)
    for k in range(8):
        record += struct.pack("<BHe", LAPLACE, *models[k]) if k in models else struct.pack("<B", ZERO)
    head = struct.pack(FIXED, 3, 3, 1, 3, 1, 1, 1.0, 0) + struct.pack(LATENT_FIELDS, 1, 1) + b"\x00"
    data = _spec_file(5, head + record + TINY_ZERO_MLP, payload)
    hdr, symbols = spec_decode(data)
    assert np.array_equal(symbols[0], q[None]) and [c["kind"] for c in hdr["records"][0]["classes"]] == [
        LAPLACE if k in models else ZERO for k in range(8)]
    ref_header, ref_symbols = bitstream.read_file(data)
    assert np.array_equal(ref_symbols[0], q[None])
    assert bitstream.write_file(ref_header, ref_symbols) == data


@pytest.mark.parametrize("name", NEIGHBOUR_FILES)
def test_neighbour_files_match_reference(files, name):
    """FORMAT.md 3 / 4.3 / 6.1: version 5 files with kind-6 and kind-7 records, written by the reference (its
    encoder on a real image, its per-class fit, hand-made grids), decode to the reference's integer symbols and
    header exactly (the pixels are compared in test_independent_reader_matches_reference)."""
    import bitstream

    data = files[name]
    hdr, symbols = spec_decode(data)
    assert data[4] == hdr["version"] == 5
    kinds = [r["kind"] for r in hdr["records"]]
    assert set(NEIGHBOUR_KINDS) & set(kinds[:hdr["latent_levels"]]), kinds
    assert not set(CLASS_KINDS) & set(kinds[hdr["latent_levels"]:])  # never on an MLP tensor
    _assert_same_records_and_symbols(data, hdr, symbols)
    names = {NEIGHBOUR_CONTEXT: "neighbour-context", NEIGHBOUR_PREDICT: "neighbour-predict"}
    for rec, info in zip(hdr["records"], bitstream.read_header(data).to_dict()["tensors"]):
        assert info["model"] == names.get(rec["kind"], info["model"])
    # what each class model coded is the symbol (NEIGHBOUR_CONTEXT) or its difference from the prediction
    # (NEIGHBOUR_PREDICT): it lies in the class model's range, and is 0 throughout a ZERO class
    for rec, q in zip(hdr["records"], symbols):
        if rec["kind"] not in NEIGHBOUR_KINDS:
            continue
        cls, pred = spec_neighbour_grid(q, len(rec["classes"]))
        d = q - pred if rec["kind"] == NEIGHBOUR_PREDICT else q
        assert np.abs(q).max() <= SYMBOL_LIMIT
        for k, sub in enumerate(rec["classes"]):
            assert np.abs(d[cls == k]).max(initial=0) <= sub.get("max_abs", 0), (k, sub["kind"])
    if name == "latent-rc":  # the real encode: its finest grid uses a neighbour kind, every such grid 8 classes (6.3)
        assert kinds[0] in NEIGHBOUR_KINDS, kinds
        assert all(len(r["classes"]) == 8 for r in hdr["records"] if r["kind"] in NEIGHBOUR_KINDS)
    else:
        kind = NEIGHBOUR_CONTEXT if name == "latent-neighbour-context" else NEIGHBOUR_PREDICT
        other = NEIGHBOUR_PREDICT if kind == NEIGHBOUR_CONTEXT else NEIGHBOUR_CONTEXT
        assert kinds[:3] == [kind, other, kind]
        assert [len(r["classes"]) for r in hdr["records"][:3]] == [8, 16, 2]
        _, q, d = _neighbour_file(kind)
        class_kinds = NC_CLASS_KINDS if kind == NEIGHBOUR_CONTEXT else NP_CLASS_KINDS
        assert np.array_equal(symbols[0], q) and tuple(c["kind"] for c in hdr["records"][0]["classes"]) == class_kinds


def _neighbour_overflow_file(top: int) -> bytes:
    """A tiny NEIGHBOUR_PREDICT file (3 x 2 image, one (1, 2, 3) grid) whose position (1, 1) decodes to `top`:
    (0,0) is 30000 (class 0's difference), (0,1) and (1,0) are 30000 too (differences 15000 from pred 15000), so
    (1,1)'s prediction is floor((30000 + 30000 + 1) / 2) = 30000 and its difference top - 30000 (class 1; both
    classes LAPLACE with max_abs up to 32767); the same with signs flipped for a negative `top`. The reference writer
    refuses values beyond +-32767, so the header is the reference's and the payload the same differences coded as
    NEIGHBOUR_CONTEXT (whose classes and order match here: (0,0) is class 0, every other position class 1)."""
    import bitstream
    from bitstream.entropy import encode_tensors
    from bitstream.header import pack_header

    sign = 1 if top > 0 else -1
    d = np.array([[[30000, 15000, 0], [15000, 0, 0]]], dtype=np.int32) * np.int32(sign)
    d[0, 1, 1] = top - 30000 * sign
    q = np.zeros_like(d)
    for r, c in np.ndindex(2, 3):
        left, above, _ = spec_neighbours(q[0], r, c)
        q[0, r, c] = d[0, r, c] + spec_neighbour_prediction(left, above)
    assert q[0, 1, 1] == top and q[0, 0, 0] == q[0, 0, 1] == q[0, 1, 0] == 30000 * sign
    assert np.array_equal(spec_neighbour_grid(d, 2)[0], spec_neighbour_grid(q, 2)[0])
    assert spec_neighbour_grid(q, 2)[0].tolist() == [[[0, 1, 1], [1, 1, 1]]]
    classes = (bitstream.TensorModel(LAPLACE, 30000, scale=4096.0), bitstream.TensorModel(LAPLACE, 32767, scale=4096.0))
    records = [bitstream.TensorRecord(2.0**-15, bitstream.TensorModel(NEIGHBOUR_PREDICT, classes=classes))]
    records += [bitstream.TensorRecord(1.0, bitstream.TensorModel(ZERO))] * 4
    header = bitstream.Header(width=3, height=2, channels=1, arch=3, hidden_width=1, hidden_layers=1, omega0=1.0,
                              init_id=0, tensors=tuple(records), latent_levels=1, latent_channels=1)
    payload = encode_tensors([d], [bitstream.TensorModel(NEIGHBOUR_CONTEXT, classes=classes)])
    data = _spec_file(5, pack_header(header), payload)
    zeros = [np.zeros(s, dtype=np.int32) for s in ((1, 1), (1,), (1, 1), (1,))]
    if abs(top) <= 32767:  # the reference writer makes the same bytes
        assert bitstream.write_file(header, [q] + zeros) == data
    else:
        with pytest.raises(ValueError, match="exceeds the format's limit"):
            bitstream.write_file(header, [q] + zeros)
    assert data[4] == 5 and data[7:7 + len(TINY_FIELDS) + 1] == TINY_FIELDS + b"\x00"
    return data


def test_neighbour_records_are_checked(files):
    """FORMAT.md 3 / 4.3 / 7 steps 3, 8 and 10.4, checked by both readers: kinds 6 and 7 only in version 5, after
    the step check; only on rank-3 tensors; n_classes 2..16; class kinds 0..3; not every class ZERO."""
    import bitstream

    nc, np_ = files["latent-neighbour-context"], files["latent-neighbour-predict"]
    hdr, _ = spec_read(np_)
    grid, mlp = hdr["records"][0], hdr["records"][hdr["latent_levels"]]
    assert grid["kind"] == NEIGHBOUR_PREDICT and len(grid["classes"]) == 8 and np_[4] == 5
    nc_grid = spec_read(nc)[0]["records"][0]
    assert nc_grid["kind"] == NEIGHBOUR_CONTEXT and len(nc_grid["classes"]) == 8

    def patched(data: bytes, head_offset: int, fmt: str, value) -> bytes:
        return _patched(data, 7 + head_offset, fmt, value)

    version5, rank = ("needs format version 5",) * 2, ("not rank 3", "only latent grids")
    classes, class_kind = ("n_classes", "classes' = "), ("class model kind", "not a plain model")
    all_zero = ("every class model is ZERO", "all zero")
    kind7_in_v4 = _patched(np_, 4, "<B", 4)  # the version byte 5 -> 4 (a version 4 header has latent_sampling too)
    siren = files["rgb"]
    siren_rec = spec_read(siren)[0]["records"][0]
    rc_mlp = spec_read(files["latent-rc"])[0]["records"][-2]
    tiny = TINY_FIELDS + b"\x00"  # 4.1: version 5 latent-grid fields include latent_sampling
    bad = {  # what: (file, why my reader rejects it, why the reference does)
        "kind 7 in a version 4 file": (kind7_in_v4, *version5),
        "kind 6 in a version 4 file": (_patched(nc, 4, "<B", 4), *version5),
        # 7 step 10.4: the step is checked first, then the version
        "kind 7 in version 4, bad step": (patched(kind7_in_v4, grid["offset"], "<e", 0.0), "step", "step"),
        "kind 7 in version 4, nan step": (patched(kind7_in_v4, grid["offset"], "<e", float("nan")), "step", "step"),
        "kind 6 on a SIREN weight, version 1": (patched(siren, siren_rec["offset"] + 2, "<B", 6), *version5),
        "kind 7 on a SIREN weight, version 1": (patched(siren, siren_rec["offset"] + 2, "<B", 7), *version5),
        "kind 6 on a SIREN weight, version 5": (patched(_patched(siren, 4, "<B", 5), siren_rec["offset"] + 2, "<B", 6),
                                                *rank),
        "kind 6 on a latent MLP weight": (patched(np_, mlp["offset"] + 2, "<B", NEIGHBOUR_CONTEXT), *rank),
        "kind 7 on a latent MLP weight": (patched(np_, mlp["offset"] + 2, "<B", NEIGHBOUR_PREDICT), *rank),
        "kind 7 on a latent MLP bias": (patched(np_, hdr["records"][-1]["offset"] + 2, "<B", NEIGHBOUR_PREDICT), *rank),
        "kind 7 on the encoder's MLP": (patched(files["latent-rc"], rc_mlp["offset"] + 2, "<B", NEIGHBOUR_PREDICT),
                                        *rank),
        "kind 7 n_classes 0": (patched(np_, grid["offset"] + 3, "<B", 0), *classes),
        "kind 7 n_classes 1": (patched(np_, grid["offset"] + 3, "<B", 1), *classes),
        "kind 7 n_classes 17": (patched(np_, grid["offset"] + 3, "<B", 17), *classes),
        "kind 6 n_classes 1": (patched(nc, nc_grid["offset"] + 3, "<B", 1), *classes),
        "kind 6 n_classes 255": (patched(nc, nc_grid["offset"] + 3, "<B", 255), *classes),
        **{f"kind 7 class kind {k}": (patched(np_, grid["classes"][0]["offset"], "<B", k), *class_kind)
           for k in (4, 5, 6, 7, 8)},
        **{f"kind 6 last class kind {k}": (patched(nc, nc_grid["classes"][-1]["offset"], "<B", k), *class_kind)
           for k in (4, 5, 6, 7)},
        "kind 6, every class ZERO": (_spec_file(5, tiny + struct.pack("<eBBBB", 1.0, NEIGHBOUR_CONTEXT, 2, 0, 0)
                                                + TINY_ZERO_MLP), *all_zero),
        "kind 7, every class ZERO": (_spec_file(5, tiny + struct.pack("<eBB", 1.0, NEIGHBOUR_PREDICT, 16) + bytes(16)
                                                + TINY_ZERO_MLP), *all_zero),
        "kind 8 in version 5": (patched(np_, grid["offset"] + 2, "<B", 8), "model kind", "not a known model"),
    }
    _assert_both_reject(bad)
    # the same tiny records with one class not ZERO are valid headers (so the checks above are the reason)
    for kind in NEIGHBOUR_KINDS:
        head = tiny + struct.pack("<eBBBBHe", 1.0, kind, 2, 0, LAPLACE, 1, 1.0) + TINY_ZERO_MLP
        assert spec_records(head, len(tiny), spec_shapes(3, 1, 1, 1, width=3, height=2, latent_levels=1,
                                                           latent_channels=1), 5)[0]["kind"] == kind
        assert bitstream.read_header(_spec_file(5, head, b"\0" * 4)).tensors[0].model.kind == kind
