"""What every family's numpy evaluator returns, and what the numpy renderer asks of a file.

A receiver without torch renders through the evaluators of `codec.families.<name>.numpy`. Each takes
the header, the dequantized weights in file order and (N, 2) coordinates (x, y), and returns an
:class:`Evaluation`: the values (N, C) and, when asked, exact derivatives with respect to (x, y) by
forward-mode differentiation. Everything is computed in the dtype of the coordinates: float32 for
images (as the torch decoder), float64 where the tests compare against finite differences.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bitstream import Header


@dataclass(frozen=True)
class Evaluation:
    """values (N, C); jacobian (N, C, 2) = d value / d(x, y); hessian_diag (N, C, 2) = d2 value / d(x, y)^2."""

    values: np.ndarray
    jacobian: np.ndarray | None = None
    hessian_diag: np.ndarray | None = None


Evaluator = Callable[..., Evaluation]


def widest_layer(header: Header) -> int:
    """The largest number of features alive per coordinate (sizes the render chunks)."""
    return max(max(shape) for shape in header.tensor_shapes() if len(shape) <= 2)
