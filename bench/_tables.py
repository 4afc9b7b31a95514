"""The benchmarks' tables, each built once from a result (its JSON form) and
rendered for the terminal (rich) or as markdown (bench/_report.py), so the
two always show the same columns and figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rich.table


@dataclass(frozen=True)
class Table:
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str | None = None


def cell(value: Any) -> str:
    """A figure as shown: None and NaN as a dash, thousands separated, and
    fewer decimals the larger the number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def to_rich(table: Table) -> rich.table.Table:
    t = rich.table.Table(
        title=table.title, caption=table.caption, title_justify="left", caption_justify="left"
    )
    for i, column in enumerate(table.columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in table.rows:
        t.add_row(*(cell(v) for v in row))
    return t


def to_markdown(table: Table) -> str:
    align = ["---"] + ["---:"] * (len(table.columns) - 1)
    lines = [f"**{table.title}**", ""]
    lines += ["| " + " | ".join(table.columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", table.caption]
    return "\n".join(lines)
