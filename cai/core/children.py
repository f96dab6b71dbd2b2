"""How cai starts cai in a process of its own (a pipeline stage, a policy's answers, a benchmark):
the child must import this very `cai`, a source checkout's too, from whatever folder it runs in."""

from __future__ import annotations

import os
import site
from pathlib import Path

import cai


def cai_env() -> dict:
    """This process's environment, with this `cai` first on PYTHONPATH unless it is installed."""
    root = str(Path(cai.__file__).resolve().parent.parent)
    if root in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        return dict(os.environ)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
