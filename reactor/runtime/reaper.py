"""The guard of `reactor dev`'s services: a small process that outlives it.

`reactor dev` starts it with a pipe on its standard input and keeps the other
end. However `reactor dev` ends, SIGKILL included, the kernel closes that end;
the guard then stops whatever still runs on the folders it was given, and
exits. After an orderly stop it finds nothing left and exits at once.

    python -m reactor.runtime.reaper --postgres DIR --temporal DIR
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from reactor.runtime.embedded import kill_temporal_servers, stop_postgres


def spawn(postgres: Path | None, temporal: Path | None, log: Path) -> subprocess.Popen[bytes]:
    """Starts the guard in its own session (a Ctrl-C in the terminal is for
    `reactor dev`, not for it); the caller keeps `stdin` open while it lives."""
    args = [sys.executable, "-m", "reactor.runtime.reaper"]
    if postgres is not None:
        args += ["--postgres", str(postgres)]
    if temporal is not None:
        args += ["--temporal", str(temporal)]
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        out.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reactor-reaper")
    parser.add_argument("--postgres", type=Path)
    parser.add_argument("--temporal", type=Path)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):  # until every writer is gone
        pass
    if args.temporal is not None:
        kill_temporal_servers(args.temporal)
    if args.postgres is not None:
        stop_postgres(args.postgres, mode="immediate", timeout=5.0)


if __name__ == "__main__":
    main()
