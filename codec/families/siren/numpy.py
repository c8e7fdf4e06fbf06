"""The SIREN evaluated with numpy alone (values and exact derivatives), for torch-free receivers."""
from __future__ import annotations

import numpy as np

from bitstream import Header

from ..evaluation import Evaluation


def evaluate(header: Header, weights: list[np.ndarray], coords: np.ndarray, *, order: int = 0) -> Evaluation:
    """SIREN: h <- sin(omega0 (W h + b)) per sine layer, then a linear output layer.

    Forward mode, per input axis k: with z = omega0 (W h + b) and h' = sin(z),
    dh'/dx_k = cos(z) * omega0 W dh/dx_k and
    d2h'/dx_k2 = cos(z) * omega0 W d2h/dx_k2 - sin(z) * (omega0 W dh/dx_k)^2.

    Args:
        order: 0 values only, 1 also the Jacobian, 2 also the second derivatives d2/dx2 and d2/dy2.
    """
    dtype = coords.dtype
    w0 = dtype.type(header.omega0)
    layers = [(w.astype(dtype, copy=False), b.astype(dtype, copy=False)) for w, b in zip(weights[0::2], weights[1::2])]
    h = coords
    n = coords.shape[0]
    dh = d2h = None
    if order >= 1:  # tangents per input axis: (2, N, features)
        dh = np.zeros((2, n, coords.shape[1]), dtype=dtype)
        dh[0, :, 0] = 1
        dh[1, :, 1] = 1
    if order >= 2:
        d2h = np.zeros_like(dh)
    for weight, bias in layers[:-1]:
        z = h @ weight.T
        z += bias
        z *= w0
        s = np.sin(z)
        if dh is not None:
            c = np.cos(z)
            dz = (dh @ weight.T) * w0
            if d2h is not None:
                d2h = c * ((d2h @ weight.T) * w0) - s * dz * dz
            dh = c * dz
        h = s
    weight, bias = layers[-1]
    values = h @ weight.T
    values += bias
    jacobian = None if dh is None else np.moveaxis(dh @ weight.T, 0, -1)
    hessian = None if d2h is None else np.moveaxis(d2h @ weight.T, 0, -1)
    return Evaluation(values, jacobian, hessian)
