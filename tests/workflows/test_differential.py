"""Counting statistics: exact intervals, what a flag claims, and how many cells to count."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from hematovision.workflows.batch import set_review
from hematovision.workflows.differential import (
    MAX_PLANNED_CELLS,
    DifferentialRow,
    cells_needed,
    clopper_pearson,
    differential,
)
from tests.model.test_statuses import cell, one_of_each, prediction


@pytest.mark.parametrize("count,n", [(0, 10), (1, 10), (4, 10), (10, 10), (0, 1), (1, 1), (7, 100), (52, 200),
                                     (199, 200), (3, 1000)])
def test_intervals_are_scipys_exact_binomial_intervals(count, n):
    expected = binomtest(count, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(count, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_nothing_counted_bounds_nothing_and_a_count_above_n_is_refused():
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="not a proportion"):
        clopper_pearson(11, 10)


def test_ten_cells_give_intervals_tens_of_points_wide():
    """The issue's example: 0 of 10 monocytes and 4 of 10 eosinophils are flagged, but only as points."""
    monocytes = DifferentialRow("MONOCYTE", 0, 10, (2.0, 8.0))
    eosinophils = DifferentialRow("EOSINOPHIL", 4, 10, (1.0, 4.0))
    assert monocytes.flag == "low" and not monocytes.finding
    assert eosinophils.flag == "high" and eosinophils.finding  # 12.2-73.8%: wholly above 4%
    low, high = eosinophils.ci95
    assert high - low > 0.5
    assert "count" in monocytes.flag_text() and f"count {monocytes.more_cells} more cells" in monocytes.flag_text()
    assert "the whole 95% interval (12.2–73.8%) lies above 4%" in eosinophils.flag_text()


def test_planning_gives_the_first_count_whose_interval_excludes_the_threshold():
    # 12% monocytes against an 8% upper limit: where the lower end first clears 8%.
    n = cells_needed(0.12, 0.08)
    assert n is not None and 200 < n < 1000
    assert binomtest(round(0.12 * n), n).proportion_ci(method="exact").low > 0.08 - 0.002
    before = n - 1
    assert clopper_pearson(round(0.12 * before), before)[0] < 0.08 + 0.002
    # none counted against a 2% lower limit: the upper end 1 - 0.025^(1/n) must fall below 2%
    assert cells_needed(0.0, 0.02) == 183
    assert clopper_pearson(0, 183)[1] < 0.02 < clopper_pearson(0, 182)[1]
    # a share on the threshold is never decided, and a near one takes more than a person counts
    assert cells_needed(0.08, 0.08) is None and cells_needed(0.081, 0.08) is None
    assert cells_needed(1.0, 0.7) == 11  # all counted cells of one class


def test_a_row_asks_for_more_cells_only_while_its_interval_reaches_the_range():
    row = DifferentialRow("MONOCYTE", 12, 100, (2.0, 8.0))
    assert row.flag == "high" and not row.finding
    assert row.more_cells == cells_needed(0.12, 0.08) - 100
    assert row.flag_text().startswith("above range at this count, but the 95% interval (6.4–20.0%) reaches 8%")
    wide = DifferentialRow("MONOCYTE", 17, 200, (2.0, 8.0))  # 8.5% against 8%
    assert f"more than {MAX_PLANNED_CELLS:,} cells" in wide.flag_text()
    within = DifferentialRow("NEUTROPHIL", 55, 100, (40.0, 70.0))
    assert within.flag_text() == "within range" and within.more_cells is None
    assert DifferentialRow("NEUTROPHIL", 0, 0, (40.0, 70.0)).flag_text() == "–"


def test_the_differential_counts_reviewed_classes_and_keeps_other_and_non_blood_cells_apart():
    cells = one_of_each()
    result = differential(cells)
    assert (result.counted, result.other_cells, result.not_blood) == (4, 1, 1)
    answer = result.as_dict()
    assert answer["cells_counted"] == 4 and answer["other_cells"] == 1 and answer["not_blood_cells"] == 1
    neutrophils = answer["classes"]["NEUTROPHIL"]
    assert (neutrophils["count"], neutrophils["share"]) == (2, 0.5)
    assert neutrophils["ci95"] == pytest.approx(list(clopper_pearson(2, 4)))
    set_review(cells, cells[4].key, "LYMPHOCYTE")  # the "not a blood cell" was a lymphocyte after all
    after = differential(cells).as_dict()
    assert after["classes"]["LYMPHOCYTE"]["count"] == 2 and after["not_blood_cells"] == 0
    assert after["cells_counted"] == 5 and after["changed"] == 1
    assert not any(line.startswith("Neutrophil: ") for line in after["flags"])  # 2 of 5 = 40%: within


def test_flags_name_each_class_outside_its_range():
    cells = [cell(n, prediction("MONOCYTE")) for n in range(1, 11)]
    flags = differential(cells).flags()
    assert [line.split(":")[0] for line in flags] == ["Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil"]
    assert "Monocyte: above range: the whole 95% interval (69.2–100.0%) lies above 8%" in flags


def test_the_page_chart_and_the_report_chart_draw_the_same_intervals():
    from hematovision import charts

    rows = differential(one_of_each()).rows  # 4 counted: 2 neutrophils, 1 lymphocyte, 1 eosinophil
    sample = charts.differential_figure(rows).data[1]
    low, high = clopper_pearson(2, 4)
    neutrophil = list(sample.x).index("Neutrophil")
    assert sample.y[neutrophil] == 50.0
    assert sample.error_y.arrayminus[neutrophil] == pytest.approx(50 - 100 * low)
    assert sample.error_y.array[neutrophil] == pytest.approx(100 * high - 50)
    monocyte = list(sample.x).index("Monocyte")  # 0 of 4: below 2% as a point only
    assert sample.marker.color[monocyte] == charts.UNSURE
    assert charts.differential_png(rows).startswith(b"\x89PNG")
