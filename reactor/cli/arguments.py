"""What the command line accepts, checked before anything connects: number
types for argparse, one check of every string argument, and how much of a
user's argument a message repeats."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterator

from reactor.domain.limits import text_problem

# A per-check timeout past an hour is a typo; past timedelta's range it
# would be an OverflowError.
MAX_SECONDS = 3600.0
# How much of an argument a message repeats: enough to recognise it.
ECHO_CHARS = 80


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{capped(text)} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number (at least 1)")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0, at most an hour."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{capped(text)} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number of seconds")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{value:g} s is over the limit of {MAX_SECONDS:g} s")
    return value


def argument_problem(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, paths: tuple[str, ...] = ()
) -> str | None:
    """Why a string argument cannot be used, naming it, or None.

    An argument that is not UTF-8 reaches Python with lone surrogates
    (surrogateescape), which no query, log line or terminal can carry; a
    file name (`paths`) is the exception, since the file system takes it."""
    names = dict(_display_names(parser, args))
    for dest, value in vars(args).items():
        if dest in paths:
            continue
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                problem = text_problem(text)
                if problem is not None:
                    return f"{names.get(dest, dest)}: the text {problem}"
    return None


def _display_names(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> Iterator[tuple[str, str]]:
    """dest -> how the user wrote it (`--document`, or the positional's name),
    over the parser and the subcommand that ran."""
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest or "", None) or "")
            if chosen is not None:
                parsers.append(chosen)
    for p in parsers:
        for action in p._actions:
            if action.option_strings:
                long = [s for s in action.option_strings if s.startswith("--")]
                yield action.dest, (long or action.option_strings)[0]
            else:
                yield action.dest, action.dest


def capped(text: str, limit: int = ECHO_CHARS) -> str:
    """`text`, or its first `limit` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def cap_echoes(message: str, args: argparse.Namespace, limit: int = ECHO_CHARS) -> str:
    """`message` with each long argument it repeats (as is or quoted) cut to
    its first `limit` characters: a 100,000-character id is not repeated back
    whole."""
    for value in vars(args).values():
        if isinstance(value, str) and len(value) > limit:
            short = capped(value, limit)
            message = message.replace(repr(value), repr(value[:limit]) + short[limit:])
            message = message.replace(value, short)
    # Parts of an argument (the batch of a job id) are quoted too.
    return re.sub(
        "'([^'\n]{" + str(limit + 1) + ",})'",
        lambda m: f"'{m.group(1)[:limit]}'… ({len(m.group(1)):,} characters)",
        message,
    )
