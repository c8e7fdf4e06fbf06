"""The entropy coder's model choice by estimated code length (bitstream.entropy.estimate_bits) against
the range coder's real output (measure_bits), for every model kind."""
from __future__ import annotations

import numpy as np
import pytest

from bitstream.entropy import (CONTEXT_KINDS, HISTOGRAM, LAPLACE, SPARSE_LAPLACE, TensorModel, choose_model,
                               estimate_bits, measure_bits)


def _grids():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.laplace(0, 0.7, (1, 40, 60)), axis=2).round().astype(np.int32)
    sparse = (rng.laplace(0, 0.25, (1, 50, 70)).round()).astype(np.int32)
    return {"laplace": rng.laplace(0, 2.0, 4000).round().astype(np.int32),
            "sparse": sparse, "smooth": np.clip(smooth, -300, 300), "wide": rng.laplace(0, 400, 3000).round().astype(np.int32)}


@pytest.mark.parametrize("name", list(_grids()))
def test_estimate_is_within_a_few_dozen_bits_of_the_coder_for_the_chosen_model(name):
    symbols = _grids()[name]
    model = choose_model(symbols)
    real = measure_bits(symbols, model)
    streams = len(model.classes) if model.kind in CONTEXT_KINDS else 1
    assert abs(estimate_bits(symbols, model) - real) <= 64 * streams + 0.002 * real


def test_estimate_matches_each_plain_kind():
    rng = np.random.default_rng(3)
    flat = rng.laplace(0, 1.5, 5000).round().astype(np.int32)
    m = int(np.abs(flat).max())
    counts = tuple(int(c) for c in np.bincount(flat + m, minlength=2 * m + 1))
    zeros = int(np.count_nonzero(flat == 0))
    for model in (TensorModel(LAPLACE, m, scale=1.5), TensorModel(LAPLACE, m, scale=0.4),
                  TensorModel(HISTOGRAM, m, counts=counts),
                  TensorModel(SPARSE_LAPLACE, m, scale=2.0, p_zero=round(65536 * zeros / flat.size))):
        real = measure_bits(flat, model)
        assert abs(estimate_bits(flat, model) - real) <= 64 + 0.002 * real, model.kind
