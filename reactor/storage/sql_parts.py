"""Statements assembled from parts that name their parameters.

A part writes `{name}` where a parameter goes and declares the parameters it
introduces; `assemble` numbers the declared names in order ($1, $2, ...) and
replaces each `{name}` with its number. Arguments are then read by name
(the attribute of that name of the object written), so adding a parameter
to one part cannot shift the value another part receives, and a part that uses a name nobody declared, or a declared name nobody uses,
fails when the statement is assembled rather than when PostgreSQL runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Part:
    sql: str
    # The parameters this part introduces, numbered after the earlier parts'.
    # A part may also use names an earlier part declared.
    params: tuple[str, ...] = ()


class Statement:
    __slots__ = ("sql", "params", "_read")

    def __init__(self, sql: str, params: tuple[str, ...]):
        self.sql = sql
        self.params = params  # params[i] is $(i + 1)
        # One call for every argument: the write path reads them per job.
        self._read: Callable[[object], Any] | None = (
            attrgetter(*params) if len(params) > 1 else None
        )

    def arguments(self, source: object) -> list[object]:
        """The positional arguments, in the statement's numbering: each
        parameter is the attribute of `source` of the same name."""
        if self._read is None:
            return [getattr(source, name) for name in self.params]
        return list(self._read(source))


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
