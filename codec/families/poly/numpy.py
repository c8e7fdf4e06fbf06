"""The Poly-INR evaluated with numpy alone (values and exact derivatives), for torch-free receivers."""
from __future__ import annotations

import numpy as np

from bitstream import Header, architectures

from ..evaluation import Evaluation


def evaluate(header: Header, weights: list[np.ndarray], coords: np.ndarray, *, order: int = 0) -> Evaluation:
    """Poly-INR: h <- W0 x + b0; per further layer h <- lrelu(W (h * (A x + a)) + b); linear output.

    Forward mode, per input axis k, with m = A x + a (dm/dx_k = A[:, k], d2m/dx_k2 = 0), p = h * m,
    z = W p + b and the piecewise-linear lrelu (slope s(z): 1 or 0.2, its second derivative 0):
    dp = dh * m + h * A[:, k], d2p = d2h * m + 2 dh * A[:, k], dh' = s(z) W dp, d2h' = s(z) W d2p.
    """
    dtype = coords.dtype
    slope = dtype.type(architectures.POLY_NEGATIVE_SLOPE)
    w = [t.astype(dtype, copy=False) for t in weights]
    first_w, first_b, out_w, out_b = w[0], w[1], w[-2], w[-1]
    h = coords @ first_w.T
    h += first_b
    dh = d2h = None
    if order >= 1:  # tangents per input axis: (2, N, features); h is affine in x at first
        dh = np.broadcast_to(first_w.T[:, None, :], (2, coords.shape[0], first_w.shape[0])).copy()
    if order >= 2:
        d2h = np.zeros_like(dh)
    for k in range(2, len(w) - 2, 4):
        coord_w, coord_b, weight, bias = w[k : k + 4]
        m = coords @ coord_w.T
        m += coord_b
        z = (h * m) @ weight.T
        z += bias
        gain = np.where(z >= 0, dtype.type(1), slope)
        if dh is not None:
            dm = coord_w.T[:, None, :]  # (2, 1, features): dm/dx_k
            if d2h is not None:
                d2h = gain * ((d2h * m + 2 * dh * dm) @ weight.T)
            dh = gain * ((dh * m + h * dm) @ weight.T)
        h = z * gain
    values = h @ out_w.T
    values += out_b
    jacobian = None if dh is None else np.moveaxis(dh @ out_w.T, 0, -1)
    hessian = None if d2h is None else np.moveaxis(d2h @ out_w.T, 0, -1)
    return Evaluation(values, jacobian, hessian)
