"""BD-rate / BD-PSNR (benchmarks.bdrate) against cases worked by hand."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bdrate import BDError, Pchip, bd_psnr, bd_rate

ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "kodak_published.json"


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.0, 1.5, 3.0])
def test_constant_rate_factor_gives_exactly_that_factor(factor):
    rate = [0.12, 0.3, 0.55, 1.1, 2.3]
    psnr = [25.0, 28.5, 30.1, 33.7, 37.0]  # not linear in log-rate
    assert bd_rate(rate, psnr, [r * factor for r in rate], psnr) == pytest.approx(factor - 1, abs=1e-12)


def test_linear_curves_worked_by_hand():
    # anchor: log10 R = (P - 30)/10, test: log10 R = (P - 30)/5 on P in [30, 40]
    # mean log-rate over [30, 40]: anchor 0.5, test 1.0 -> BD-rate = 10**0.5 - 1
    assert bd_rate([1, 10], [30, 40], [1, 100], [30, 40]) == pytest.approx(10**0.5 - 1, abs=1e-12)
    # four collinear points: PCHIP reproduces the line, same answer
    assert bd_rate([1, 10**(1 / 3), 10**(2 / 3), 10], [30, 33.3333333333333, 36.6666666666667, 40],
                   [1, 100], [30, 40]) == pytest.approx(10**0.5 - 1, abs=1e-9)


def test_partial_overlap_worked_by_hand():
    # anchor log10 R = (P-30)/10 on [30,40]; test log10 R = (P-35)/10 on [35,45]
    # overlap [35,40]: mean anchor 0.75, mean test 0.25 -> 10**-0.5 - 1; test is 5 dB better at any rate
    assert bd_rate([1, 10], [30, 40], [1, 10], [35, 45]) == pytest.approx(10**-0.5 - 1, abs=1e-12)
    assert bd_psnr([1, 10], [30, 40], [1, 10], [35, 45]) == pytest.approx(5.0, abs=1e-12)


def test_point_order_does_not_matter():
    rate, psnr = [0.1, 0.4, 0.9, 1.6], [24.0, 29.0, 32.5, 35.0]
    trate, tpsnr = [0.15, 0.5, 1.0, 2.0], [25.0, 30.0, 33.0, 36.5]
    ref = bd_rate(rate, psnr, trate, tpsnr)
    assert bd_rate(rate[::-1], psnr[::-1], [trate[i] for i in (2, 0, 3, 1)], [tpsnr[i] for i in (2, 0, 3, 1)]) == ref


def test_pchip_slopes_and_exact_integral_by_hand():
    # x = 0,1,2, y = 0,1,4: secants 1, 3; interior slope = harmonic mean (w1 = w2 = 3) = 1.5;
    # end slopes (three-point formula) 0 and 4. Integral over [0, 2] = 0.375 + 2.291666... = 8/3
    p = Pchip([0, 1, 2], [0, 1, 4])
    assert p.d.tolist() == pytest.approx([0.0, 1.5, 4.0])
    assert p.integrate(0, 2) == pytest.approx(8 / 3, abs=1e-12)
    assert p.integrate(0, 1) == pytest.approx(0.375, abs=1e-12)
    assert p([0, 1, 2]).tolist() == pytest.approx([0, 1, 4])


def test_pchip_is_monotone_on_monotone_data():
    p = Pchip([0, 1, 2, 3, 4], [0, 0.1, 0.2, 3.0, 3.05])
    t = np.linspace(0, 4, 401)
    assert np.all(np.diff(p(t)) >= -1e-12)


def test_errors():
    with pytest.raises(BDError, match="overlap"):
        bd_rate([1, 2], [30, 31], [1, 2], [35, 36])
    with pytest.raises(BDError, match="two points"):
        bd_rate([1], [30], [1, 2], [30, 31])
    with pytest.raises(BDError, match="positive"):
        bd_rate([0, 2], [30, 31], [1, 2], [30, 31])


@pytest.mark.skipif(not ANCHORS.exists(), reason=f"{ANCHORS} not present")
def test_matches_bjontegaard_package_on_published_curves():
    # reference values: bjontegaard 1.3.0, bd_rate(..., method="pchip", require_matching_points=False)
    codecs = json.loads(ANCHORS.read_text())["codecs"]
    jpeg = codecs["JPEG"]
    expected = {"WebP": -36.17651297785321, "JPEG2000": -35.85535881303339}
    for name, value in expected.items():
        got = 100 * bd_rate(jpeg["bpp"], jpeg["psnr"], codecs[name]["bpp"], codecs[name]["psnr"])
        assert got == pytest.approx(value, abs=1e-9)
    assert math.isclose(bd_psnr(jpeg["bpp"], jpeg["psnr"], codecs["WebP"]["bpp"], codecs["WebP"]["psnr"]),
                        2.675843692056242, abs_tol=1e-9)
