"""The benchmarks' one table renderer (bench/_tables.py) and percentile
(bench/_stats.py): a figure reads the same in the terminal and in markdown."""

from __future__ import annotations

import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _stats import Summary, percentile  # noqa: E402
from _tables import Table, cell, to_markdown, to_rich  # noqa: E402


def test_cell_formats_by_magnitude_and_dashes_what_is_missing() -> None:
    assert cell(None) == "–"
    assert cell(math.nan) == "–"
    assert cell(1234.5) == "1,234"
    assert cell(12.345) == "12.3"
    assert cell(1.2345) == "1.23"
    assert cell(12345) == "12,345"
    assert cell(True) == "True"
    assert cell("b. 20 × 100-job batches") == "b. 20 × 100-job batches"


def test_markdown_and_terminal_show_the_same_cells() -> None:
    table = Table("Throughput", ["phase", "jobs/s"], [["b", 1234.5], ["d", None]], caption="why")
    assert to_markdown(table).splitlines() == [
        "**Throughput**",
        "",
        "| phase | jobs/s |",
        "| --- | ---: |",
        "| b | 1,234 |",
        "| d | – |",
        "",
        "why",
    ]
    rendered = to_rich(table)
    assert [c.header for c in rendered.columns] == ["phase", "jobs/s"]
    assert list(rendered.columns[1].cells) == ["1,234", "–"]


def test_percentile_is_the_floor_index_clamped_to_the_last() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 6.0
    assert percentile(values, 99) == 10.0
    assert math.isnan(percentile([], 50))
    summary = Summary.of([0.001, 0.002, 0.003])
    assert summary.scaled(1000)["p50"] == 2.0 and summary.n == 3
