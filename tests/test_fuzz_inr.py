"""Mutation fuzzing of the decoder (fixed seed): only a decoded image or InrFormatError, quickly.

The loop is benchmarks/robustness/fuzz_inr.py; run it there for long campaigns:
    python -m benchmarks.robustness.fuzz_inr --cases 1000000 --seed 1
"""
from __future__ import annotations

import random

import pytest

from benchmarks.robustness import fuzz_inr

CASES = 20_000


@pytest.fixture(scope="module")
def files():
    return fuzz_inr.corpus(real=True)


@pytest.mark.slow
def test_corpus_is_valid(files):
    for data in files:
        fuzz_inr.decode_case(data)


@pytest.mark.slow
def test_mutation_fuzz(files):
    report = fuzz_inr.run(CASES, seed=20240607, files=files, time_limit=1.0)
    assert report.cases == CASES
    assert not report.failures, report.summary()
    assert report.rejected > CASES // 2  # the mutations really break files
    assert report.decoded > 0  # and some survive (CRC recomputed), so decoding behind the checks runs
    for op in ("bitflip", "bitflip+crc", "truncate", "insert+crc", "delete", "splice+crc", "byteset+crc",
               "overwrite+crc", "header-edit", "payload-edit", "work-bomb", "shape-bomb"):
        assert report.mutations[op] > 0, op
    assert report.total_seconds < 60


def test_mutations_with_crc_reach_the_header_parser(files):
    """With the CRC recomputed, most rejections come from behind the checksum."""
    report = fuzz_inr.run(600, seed=7, files=files)
    behind = sum(v for k, v in report.messages.items() if "checksum" not in k)
    assert behind > report.rejected // 2
    assert any(k.startswith("header field") for k in report.messages)
    assert any("payload" in k for k in report.messages)


def test_mutate_is_reproducible(files):
    a = [fuzz_inr.mutate(random.Random(5), files) for _ in range(50)]
    b = [fuzz_inr.mutate(random.Random(5), files) for _ in range(50)]
    assert a == b
