"""Statements assembled from parts that name their parameters.

A part writes `{name}` where a parameter goes and declares the parameters it
introduces; `assemble` numbers the declared names in order ($1, $2, ...) and
replaces each `{name}` with its number. Arguments are then given by name, so
adding a parameter to one part cannot shift the value another part receives,
and a part that uses a name nobody declared, or a declared name nobody uses,
fails when the statement is assembled rather than when PostgreSQL runs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Part:
    sql: str
    # The parameters this part introduces, numbered after the earlier parts'.
    # A part may also use names an earlier part declared.
    params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: tuple[str, ...]  # params[i] is $(i + 1)

    def arguments(self, values: Mapping[str, object]) -> list[object]:
        """The positional arguments, in the statement's numbering."""
        return [values[name] for name in self.params]


def assemble(*parts: Part) -> Statement:
    numbers: dict[str, str] = {}
    for part in parts:
        for name in part.params:
            if name in numbers:
                raise ValueError(f"parameter {name!r} is declared twice")
            numbers[name] = f"${len(numbers) + 1}"
    used: set[str] = set()

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in numbers:
            raise ValueError(f"parameter {name!r} is used but not declared")
        used.add(name)
        return numbers[name]

    sql = "".join(_PLACEHOLDER.sub(number, part.sql) for part in parts)
    unused = [name for name in numbers if name not in used]
    if unused:
        raise ValueError(f"parameters declared but not used: {', '.join(unused)}")
    return Statement(sql, tuple(numbers))
