"""The `cai` command line: one module per command group, all on the root app of `cai.cli.common`.

constitution (check, import) · generation (generate, critique, sample, label, rules, redteam
expand) · exports (export sft|prefs|rules) · training (train sft|dpo|pm|ppo|rules) · evaluate
(eval judge|pm|rules|policies) · bench · project (init, run, demo, report, model prepare) · review
(export, push, pull: human gold sets through Label Studio) · publish · fit (rules: weights fitted
to people) · serve (serve reward: OpenRLHF's remote reward API).
"""

from __future__ import annotations

import sys

from cai.cli import (  # noqa: F401 - they register their commands
    bench,
    constitution,
    evaluate,
    exports,
    fit,
    generation,
    project,
    publish,
    review,
    serve,
    training,
)
from cai.cli.common import app, err, flags, global_flags_first
from cai.core.errors import CaiError
from cai.runner.plugins import load_plugins

__all__ = ["app", "main"]


def main() -> None:
    try:
        load_plugins()
        app(args=global_flags_first(sys.argv[1:]), prog_name="cai")
    except CaiError as e:
        if flags["debug"]:
            raise
        err.print(f"[red]error:[/red] {e}", highlight=False)
        sys.exit(1)
