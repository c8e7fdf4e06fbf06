"""Bjøntegaard delta rate and PSNR with PCHIP interpolation (numpy only).

The modern BD-rate (as the ``bjontegaard`` package's ``method="pchip"`` and
CompressAI): each curve's log10(rate) is interpolated as a function of PSNR with
a piecewise cubic Hermite interpolant (PCHIP, Fritsch–Carlson derivatives as in
``scipy.interpolate.PchipInterpolator``), both interpolants are integrated
exactly over the PSNR interval where the curves overlap, and

    BD-rate = 10 ** ((integral_test - integral_anchor) / (hi - lo)) - 1

i.e. the average relative rate difference of the test codec at equal quality
(negative = the test codec needs fewer bits).  BD-PSNR swaps the axes: PSNR as
a function of log10(rate), averaged over the overlapping log-rate interval.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


class BDError(ValueError):
    """The curves cannot be compared (too few points, no overlap, bad rates)."""


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def edge(h0, h1, m0, m1):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(e) > 3 * abs(m0):
            return 3 * m0
        return e

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


class Pchip:
    """Monotone piecewise cubic Hermite interpolant of points with increasing x."""

    def __init__(self, x: Sequence[float], y: Sequence[float]):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
            raise BDError("need at least two points")
        if np.any(np.diff(x) <= 0):
            raise BDError("x must be strictly increasing")
        self.x, self.y, self.d = x, y, _pchip_slopes(x, y)

    def __call__(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        k = np.clip(np.searchsorted(self.x, t, side="right") - 1, 0, len(self.x) - 2)
        h = self.x[k + 1] - self.x[k]
        s = (t - self.x[k]) / h
        h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
        h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
        return h00 * self.y[k] + h10 * h * self.d[k] + h01 * self.y[k + 1] + h11 * h * self.d[k + 1]

    def integrate(self, a: float, b: float) -> float:
        """Exact integral over [a, b] (a <= b, both inside the data range)."""
        total = 0.0
        for k in range(len(self.x) - 1):
            lo, hi = max(a, self.x[k]), min(b, self.x[k + 1])
            if hi <= lo:
                continue
            h = self.x[k + 1] - self.x[k]
            # antiderivative of the Hermite cubic in the local variable s = (t - x_k)/h
            c = (self.y[k], h * self.d[k], self.y[k + 1], h * self.d[k + 1])

            def prim(s, c=c, h=h):
                H00 = s**4 / 2 - s**3 + s
                H10 = s**4 / 4 - 2 * s**3 / 3 + s**2 / 2
                H01 = -(s**4) / 2 + s**3
                H11 = s**4 / 4 - s**3 / 3
                return h * (H00 * c[0] + H10 * c[1] + H01 * c[2] + H11 * c[3])

            total += prim((hi - self.x[k]) / h) - prim((lo - self.x[k]) / h)
        return float(total)


def _prepare(rate, psnr):
    rate = np.asarray(rate, dtype=np.float64)
    psnr = np.asarray(psnr, dtype=np.float64)
    if rate.shape != psnr.shape or rate.ndim != 1:
        raise BDError("rate and PSNR lists must have the same length")
    keep = np.isfinite(rate) & np.isfinite(psnr)
    rate, psnr = rate[keep], psnr[keep]
    if np.any(rate <= 0):
        raise BDError("rates must be positive")
    # sort by quality and merge points of equal PSNR (PCHIP needs distinct x)
    uniq = np.unique(psnr)
    logr = np.array([np.log10(rate[psnr == u]).mean() for u in uniq])
    if len(uniq) < 2:
        raise BDError("need at least two points of distinct PSNR per curve")
    return logr, uniq


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Bjøntegaard delta rate of ``test`` against ``anchor``, as a fraction.

    Args:
        rate_anchor, psnr_anchor: the anchor curve (any order; rates > 0).
        rate_test, psnr_test: the tested curve.

    Returns:
        The average relative rate difference at equal PSNR over the
        overlapping PSNR range: -0.2 means 20 % fewer bits than the anchor.

    Raises:
        BDError: fewer than two distinct points, or no PSNR overlap.
    """
    la, pa = _prepare(rate_anchor, psnr_anchor)
    lt, pt = _prepare(rate_test, psnr_test)
    lo, hi = max(pa[0], pt[0]), min(pa[-1], pt[-1])
    if hi <= lo:
        raise BDError(f"no PSNR overlap (anchor {pa[0]:.2f}-{pa[-1]:.2f} dB, test {pt[0]:.2f}-{pt[-1]:.2f} dB)")
    avg = (Pchip(pt, lt).integrate(lo, hi) - Pchip(pa, la).integrate(lo, hi)) / (hi - lo)
    return float(10.0**avg - 1.0)


def bd_psnr(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Bjøntegaard delta PSNR (dB) of ``test`` against ``anchor`` at equal rate.

    PSNR is interpolated with PCHIP as a function of log10(rate) and averaged
    over the overlapping log-rate range. Raises :class:`BDError` like
    :func:`bd_rate`.
    """
    la, pa = _prepare(rate_anchor, psnr_anchor)
    lt, pt = _prepare(rate_test, psnr_test)

    def by_rate(logr, p):
        order = np.argsort(logr, kind="stable")
        logr, p = logr[order], p[order]
        if np.any(np.diff(logr) <= 0):
            raise BDError("rates must be distinct for BD-PSNR")
        return logr, p

    la, pa = by_rate(la, pa)
    lt, pt = by_rate(lt, pt)
    lo, hi = max(la[0], lt[0]), min(la[-1], lt[-1])
    if hi <= lo:
        raise BDError("no rate overlap")
    return float((Pchip(lt, pt).integrate(lo, hi) - Pchip(la, pa).integrate(lo, hi)) / (hi - lo))


def psnr_overlap(psnr_anchor, psnr_test) -> tuple[float, float]:
    """The PSNR interval (lo, hi) over which BD-rate averages; lo >= hi means none."""
    pa = [p for p in psnr_anchor if math.isfinite(p)]
    pt = [p for p in psnr_test if math.isfinite(p)]
    return max(min(pa), min(pt)), min(max(pa), max(pt))
