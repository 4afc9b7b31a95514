"""Markdown tables from the benchmarks' `--json` lines, for bench/RESULTS.md:
the tables each benchmark prints, built by the same code.

python bench/throughput.py --json | tail -1 > /tmp/throughput.json
python bench/latency.py --json | tail -1 > /tmp/latency.json
python bench/read_cost.py --json | tail -1 > /tmp/read_cost.json
python bench/write_cost.py --json | tail -1 > /tmp/write_cost.json
python bench/http_load.py --json | tail -1 > /tmp/http_load.json
python bench/sync.py --json | tail -1 > /tmp/sync.json
python bench/_report.py /tmp/throughput.json /tmp/latency.json /tmp/read_cost.json /tmp/write_cost.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import http_load
import latency
import read_cost
import stress
import sync
import throughput
import write_cost
from _tables import Table, to_markdown

TABLES: dict[str, Callable[[dict[str, Any]], list[Table]]] = {
    "throughput": throughput.tables,
    "latency": latency.tables,
    "http_load": http_load.tables,
    "read_cost": read_cost.tables,
    "write_cost": write_cost.tables,
    "stress": stress.tables,
    "sync": sync.tables,
}


def render(result: dict[str, Any]) -> str:
    parts = [to_markdown(t) for t in TABLES[result["bench"]](result)]
    if result["bench"] == "throughput":
        parts.append(throughput.correctness(result["verify"], markup=False))
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="+", type=Path, help="files whose last line is a --json line"
    )
    args = parser.parse_args()
    for path in args.paths:
        result = json.loads(path.read_text().strip().splitlines()[-1])
        print(f"### {result['bench']}\n\n{render(result)}\n")


if __name__ == "__main__":
    main()
