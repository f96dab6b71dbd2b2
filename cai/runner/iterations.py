"""RUN/iterations.json: iterated online RL-CAI's progress, each iteration's Elo (with 95% intervals)
per tag and policy, from the `eval_policies` of every iteration finished so far. `cai run` writes
it after each iteration's evaluation; `cai report` draws it against the iteration."""

from __future__ import annotations

import json
from pathlib import Path

from cai.core.run import atomic_write


def write_iterations(run: Path, evaluations: list[tuple[int, Path]]) -> Path | None:
    """`evaluations`: (iteration, its eval.json); the ones not written yet are left out."""
    found = []
    for iteration, path in sorted(evaluations):
        if path.is_file():
            tags = json.loads(path.read_text())["tags"]
            found.append({"iteration": iteration, "eval": str(path.relative_to(run)),
                          "tags": {tag: {"elo": s["elo"], "ci95": s["ci95"]} for tag, s in tags.items()}})
    if not found:
        return None
    target = run / "iterations.json"
    atomic_write(target, lambda f: json.dump({"iterations": found}, f, indent=2))
    return target
