"""The one way the tests run `cai`: `cai(...)` in a subprocess (a command that loads vLLM or is
killed, as a user runs it), `invoke(...)` in this process (typer's CliRunner) where no subprocess
is needed. The subprocess runs this checkout's cai, from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cai(*args, cwd=None, timeout: float = 600, env: dict | None = None, quiet: bool = True) -> subprocess.CompletedProcess:
    """`python -m cai [--quiet] ARGS` in a subprocess; `env` replaces the environment (this
    checkout first on PYTHONPATH, then the paths `env` names)."""
    argv = [sys.executable, "-m", "cai", *(["--quiet"] if quiet else []), *map(str, args)]
    env = ENV if env is None else env
    paths = [str(ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT))]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**env, "PYTHONPATH": os.pathsep.join(paths)})


def invoke(args: list, **kwargs):
    """`cai ARGS` in this process (CliRunner.invoke's keywords pass through); the result has
    exit_code and output."""
    from cai.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], **{"terminal_width": 200, **kwargs})
