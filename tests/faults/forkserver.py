"""Start ``rulelife`` commands by forking a process that imported rulelife and its libraries once.

    python -m tests.faults.forkserver      # started by ForkServer; one JSON request a line on stdin

Each command is a real ``rulelife`` process (its own pid, process group,
working directory, environment and output file) that skips the interpreter's
start and the imports: 2-3 s of a run that writes nothing. The long kill run
(``runner.py --fork-server``) spends its kill points on the commands' own
work, and a trial costs about half as much. The suite's sample keeps starting
a fresh interpreter a command (:func:`tests.faults.harness.run`).

A request is ``{"args": [...], "cwd": ..., "env": {...}, "out": path}``; the
server answers ``{"pid": N}`` once the child runs, then ``{"code": C}`` when it
ended (C negative: killed by signal -C).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

# What the commands import; loaded once, before any fork (no thread of ours runs then).
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "sqlalchemy", "sqlmodel", "psycopg", "pydantic",
           "typer", "yaml", "ahocorasick", "ruptures", "sklearn.metrics",
           "rulelife.cli", "rulelife.cli.bundle", "rulelife.cli.gate", "rulelife.cli.mine", "rulelife.cli.monitor",
           "rulelife.cli.rules", "rulelife.monitoring.nightly", "rulelife.evidence.promotion",
           "rulelife.store.registry", "rulelife.serving.publish")


def _child(request: dict) -> None:
    code = 1
    try:
        os.setsid()  # its own process group, as the subprocess launcher's start_new_session
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.argv = ["rulelife", *request["args"]]
        from rulelife.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS thread pool to carry across fork()
    for name in PRELOAD:
        importlib.import_module(name)
    from rulelife.querylog.validate import _import_gx

    _import_gx()  # great-expectations, imported as the log validation does (it guards a pyspark import)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


class ForkServer:
    """The parent side: one command at a time, killed (its whole group) after ``kill_at`` seconds."""

    def __init__(self):
        self._proc = subprocess.Popen([sys.executable, "-m", "tests.faults.forkserver"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, bufsize=0, cwd=Path(__file__).resolve().parents[2])
        self._pending = b""  # read from the server, not yet a whole line

    def _answer(self, timeout: float | None) -> dict | None:
        """The server's next line, or None when none came within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._proc.stdout], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the fork server ended (exit {self._proc.wait()})")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def run(self, args: list[str], *, cwd: Path, env: dict, out: Path, kill_at: float | None,
            timeout: float) -> tuple[int | None, float]:
        """(exit code, or None when killed; seconds from the request to the end)."""
        started = time.monotonic()
        request = {"args": args, "cwd": str(cwd), "env": env, "out": str(out)}
        self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        self._proc.stdin.flush()
        pid = self._answer(None)["pid"]
        ended = self._answer(kill_at if kill_at is not None else timeout)
        if ended is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended between the wait and the kill
                pass
            ended = self._answer(None)
            if kill_at is None:
                raise AssertionError(f"{args} did not finish in {timeout} s")
            # It may have ended on its own just before the kill.
            return (None if ended["code"] == -signal.SIGKILL else ended["code"]), time.monotonic() - started
        return ended["code"], time.monotonic() - started

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


if __name__ == "__main__":
    serve()
