"""OpenRLHF 0.11.2's own reward client, installed once for the tests beside cai.

`pip install --no-deps --target DIR openrlhf==0.11.2 pylatexenc` (its agent module imports beside
cai; its heavy dependencies are never imported by it) into $CAI_HOME/test-packages, under a file
lock, so a rerun finds it there and installs nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from cai.engine.models import cai_home

VERSION = "0.11.2"


def openrlhf_path() -> Path:
    target = cai_home() / "test-packages" / f"openrlhf-{VERSION}"
    with FileLock(str(target) + ".lock"):
        if not (target / "openrlhf" / "utils" / "agent.py").is_file():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)  # what a killed install left
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(partial),
                            f"openrlhf=={VERSION}", "pylatexenc"], check=True, timeout=600)
            partial.rename(target)
    return target


def single_turn_executor(url: str):
    """`openrlhf.utils.agent.SingleTurnAgentExecutor(url)`, OpenRLHF's client of a remote reward."""
    path = str(openrlhf_path())
    if path not in sys.path:
        sys.path.append(path)  # after the venv's packages: OpenRLHF's pins never shadow them
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    return SingleTurnAgentExecutor(url)
