"""Stages from outside cai. A plugin is a module that adds its command to cai's app
(`cai.cli.common.app`) and its `StageSpec` to the registry (`cai.runner.registry.register`); it is then
a command and a pipeline stage like any other. cai imports, before it parses a command line, the
modules named in `CAI_PLUGINS` (comma-separated) and those of installed packages' `cai.runner.plugins`
entry points. `cai run` starts each stage with the same environment, so the stage's own process
finds the plugin too.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from cai.core.errors import CaiError


def load_plugins() -> list[str]:
    """Import every plugin module; returns their names."""
    names = [n.strip() for n in os.environ.get("CAI_PLUGINS", "").split(",") if n.strip()]
    names += [ep.value for ep in entry_points(group="cai.runner.plugins")]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise CaiError(f"the plugin '{name}' (CAI_PLUGINS or a cai.runner.plugins entry point) could not be imported: {e}") from e
    return names
