"""Empirical entropy of the latent symbols of latent-grid files under candidate context models (no header costs).

    python benchmarks/results/latent_settings/context_entropy/context_entropy.py FILE.inr [...]   (repository root on PYTHONPATH)

Per grid, in bytes: `actual` (the payload the file's own model takes, bitstream.entropy.measure_bits), then the
ideal cost -sum log2 p of each symbol under the per-class histogram of the symbols themselves (so a lower bound
of any model with those classes, before its header): `plain` one class; `row` ROW_CONTEXT's classes (row
above); `rowpred` ROW_PREDICT's differences in those classes; `+par` those classes crossed with min(|parent|, 3),
the co-located value of the next coarser grid; `causal4` classes from |left| + |above-left| + |above| +
|above-right| (capped at 7), `causal4pred` the differences from floor((2 left + 2 above + 2) / 4) in those
classes; `checker` anchors (i + j even) by the parent's class, the others by their four neighbours.
A scratch analysis (2026-11-27), kept to size a richer context model; not part of the codec.
"""
import sys, numpy as np
import bitstream
from bitstream.entropy import context_classes, row_prediction, choose_model, measure_bits

def H(vals, cls):
    """bits: sum over classes of empirical entropy (ideal adaptive-free histogram)"""
    tot = 0.0
    for k in np.unique(cls):
        v = vals[cls == k]
        _, c = np.unique(v, return_counts=True)
        p = c / c.sum()
        tot += -(c * np.log2(p)).sum()
    return tot

for path in sys.argv[1:]:
    header, syms = bitstream.read_file(open(path,'rb').read())
    L = header.latent_levels
    grids = [s[0].astype(np.int64) for s in syms[:L]]  # 1 channel
    print(path, len(open(path,'rb').read()), 'bytes', [g.shape for g in grids])
    tot = {}
    for l, g in enumerate(grids):
        if not g.any(): continue
        R, C = g.shape
        above = np.zeros_like(g); above[1:] = g[:-1]
        left = np.zeros_like(g); left[:, 1:] = g[:, :-1]
        cls_row = context_classes(np.abs(above), 6)
        pred = row_prediction(above)
        # parent: coarser level nearest upsampled
        if l + 1 < L:
            p = grids[l+1]
            pr = np.minimum(np.arange(R) // 2, p.shape[0]-1); pc = np.minimum(np.arange(C) // 2, p.shape[1]-1)
            par = p[pr][:, pc]
        else:
            par = np.zeros_like(g)
        # stored actual
        model = header.tensors[l].model
        act = measure_bits(syms[l], model)
        res = {}
        res['plain'] = H(g, np.zeros_like(g))
        res['row'] = H(g, cls_row)
        res['rowpred'] = H(g - pred, cls_row)
        cls_par = np.minimum(np.abs(par), 3)
        res['row+par'] = H(g, cls_row * 4 + cls_par)
        res['rowpred+par'] = H(g - pred, cls_row * 4 + cls_par)
        # causal with left: class from above(3) + left
        cls_causal = np.minimum(np.abs(above) + np.abs(left) + np.abs(np.pad(above,((0,0),(0,1)))[:,1:]) + np.abs(np.pad(above,((0,0),(1,0)))[:,:-1]), 7)
        res['causal4'] = H(g, cls_causal)
        predc = (left + np.pad(above,((0,0),(0,1)))[:,1:] + 2*above + 2) >> 2 if True else 0
        res['causal4pred'] = H(g - ((2*left + 2*above - np.pad(above,((0,0),(1,0)))[:,:-1]*0 + 2) >> 2), cls_causal)
        res['causal4+par'] = H(g, cls_causal * 4 + cls_par)
        # checkerboard: anchors (i+j even) with row+par class; non-anchors with 4-neighbour sum
        ii, jj = np.indices(g.shape); anchor = (ii + jj) % 2 == 0
        pad = np.pad(np.abs(g), 1)
        n4 = pad[:-2,1:-1] + pad[2:,1:-1] + pad[1:-1,:-2] + pad[1:-1,2:]
        # anchors: context from coarser parent only (all anchors decoded at once)
        cls_a = cls_par
        b_a = H(g[anchor], cls_a[anchor])
        cls_n = np.minimum(n4, 9) * 4 + cls_par
        padg = np.pad(g, 1)
        predn = (padg[:-2,1:-1] + padg[2:,1:-1] + padg[1:-1,:-2] + padg[1:-1,2:] + 2) >> 2
        b_n = H(g[~anchor], cls_n[~anchor]); b_np = H((g - predn)[~anchor], cls_n[~anchor])
        res['checker'] = b_a + min(b_n, b_np)
        print(f"  L{l} {g.shape} actual {act/8:.0f}B  " + "  ".join(f"{k} {v/8:.0f}" for k, v in res.items()))
        for k, v in res.items(): tot[k] = tot.get(k, 0) + v
        tot['actual'] = tot.get('actual', 0) + act
    print('  TOTAL ' + '  '.join(f"{k} {v/8:.0f}" for k, v in tot.items()))
