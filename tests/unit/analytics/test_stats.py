"""The holdout statistics against published and independently computed values.

Reference values: Newcombe (1998), "Interval estimation for the difference between independent
proportions", Statistics in Medicine 17, table II, method 10; the rest from statsmodels 0.14
(`confint_proportions_2indep`, `proportions_ztest`, `CompareMeans.zconfint_diff`, `multipletests`),
computed once outside this project and written down here.
"""

from __future__ import annotations

import pytest

from pipeline.analytics.stats import Sample, compare_means, compare_rates, holm, wilson


@pytest.mark.parametrize(
    ("counts", "low", "high"),
    [
        ((56, 70, 48, 80), 0.0524, 0.3339),  # Newcombe's examples
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((5, 56, 0, 29), -0.0381, 0.1926),
        ((130, 1000, 100, 1000), 0.002002, 0.058070),
    ],
)
def test_the_difference_of_rates_has_newcombes_interval(
    counts: tuple[int, int, int, int], low: float, high: float
) -> None:
    result = compare_rates(*counts)
    assert result.absolute.estimate == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert result.absolute.low == pytest.approx(low, abs=1e-4)
    assert result.absolute.high == pytest.approx(high, abs=1e-4)


def test_the_relative_uplift_has_the_katz_log_interval_and_the_z_test_p_value() -> None:
    result = compare_rates(56, 70, 48, 80)
    assert result.relative is not None
    assert result.relative.estimate == pytest.approx(0.8 / 0.6 - 1)
    assert result.relative.low == pytest.approx(1.0766264 - 1, abs=1e-6)
    assert result.relative.high == pytest.approx(1.6512485 - 1, abs=1e-6)
    assert result.p_value == pytest.approx(0.0080451, abs=1e-6)
    assert compare_rates(130, 1000, 100, 1000).p_value == pytest.approx(0.0354885, abs=1e-6)


def test_no_relative_uplift_against_a_held_out_rate_of_zero() -> None:
    assert compare_rates(5, 56, 0, 29).relative is None


def test_the_wilson_interval_stays_inside_zero_and_one() -> None:
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson(10, 10)[1] == 1.0
    low, high = wilson(48, 80)
    assert (low, high) == pytest.approx((0.4904, 0.7003), abs=1e-4)


def test_the_difference_of_means_is_welchs_with_a_normal_approximation() -> None:
    treated = Sample.of([0, 0, 12.5, 30, 0, 4, 18, 0, 7.25, 0])
    held = Sample.of([0, 3, 0, 0, 9.5, 0, 0, 2, 0, 0, 1])
    result = compare_means(treated, held)
    assert (result.treated, result.held_out) == pytest.approx((7.175, 1.4090909))
    assert result.absolute.low == pytest.approx(-0.7719799, abs=1e-6)
    assert result.absolute.high == pytest.approx(12.3037981, abs=1e-6)
    assert result.p_value == pytest.approx(0.0838922, abs=1e-6)


def test_holm_adjusts_in_the_order_given() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []


def test_a_bigger_sample_could_show_a_smaller_effect() -> None:
    small = compare_rates(13, 100, 10, 100)
    large = compare_rates(1300, 10_000, 1000, 10_000)
    assert large.detectable < small.detectable / 9
