"""Third-party work-arounds: each test fails if the work-around is removed."""

from __future__ import annotations

import subprocess
import sys


def test_validation_survives_python_dash_c():
    # pyspark 4 (imported by great-expectations when installed) calls
    # sys.exit(0) on import under `python -c`: the validator must guard it.
    code = "from rulelife.querylog.validate import _context; _context(); print('still running')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "still running" in out.stdout
