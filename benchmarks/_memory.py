"""Peak memory of one call, measured in a fresh interpreter.

    python -m benchmarks._memory MODULE:FUNCTION '{"keyword": "arguments"}'

The parent process of a benchmark holds simulated frames and earlier
results, so its high-water mark says nothing about the call under test. A
fresh subprocess runs only the imports and the call; the peak resident set
read after the imports and again after the call gives the interpreter's
floor and the call's peak. The last stdout line is the JSON answer.
"""

from __future__ import annotations

import importlib
import json
import resource
import subprocess
import sys

__all__ = ["measure_in_subprocess", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MB.

    ``VmHWM`` from /proc, not ``ru_maxrss``: Linux carries the forking
    parent's high-water mark into ``ru_maxrss`` across fork and exec, so a
    child of a 900 MB benchmark would report at least 900 MB whatever it
    did. ``VmHWM`` belongs to the address space, which exec replaces.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, elsewhere a fallback


def measure_in_subprocess(target: str, kwargs: dict, *, timeout: float = 1800) -> dict:
    """Run ``target`` ("module:function") with ``kwargs`` in a fresh interpreter.

    Returns ``{"result": <the function's JSON-ready return>, "imports_mb": ...,
    "peak_mb": ...}``; ``imports_mb`` is the high-water mark once the target's
    module is imported, before the call.
    """
    done = subprocess.run([sys.executable, "-m", "benchmarks._memory", target, json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed in its subprocess (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _main(argv: list[str]) -> None:
    target, kwargs = argv[0], json.loads(argv[1])
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    imports_mb = peak_rss_mb()
    result = function(**kwargs)
    print(json.dumps({"result": result, "imports_mb": imports_mb, "peak_mb": peak_rss_mb()}))


if __name__ == "__main__":
    _main(sys.argv[1:])
