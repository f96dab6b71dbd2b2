"""`cai run`: the stages of a pipeline file, each as its own `cai` command, skipping what is done.

Every stage runs as `python -m cai COMMAND OPTIONS` in a process of its own: two in-process vLLM
engines in one process break each other, and a process per stage gives the memory of training
back before generation starts. The run folder's manifest gets a `pipeline` entry per stage (its
settings, their fingerprint, its command, when it ran and an id per finished run), from which a
rerun decides, stage by stage:

- done: the same settings, finished, its output there, and what it read unchanged: skipped;
- resume: started but not finished: run again (generation stages go on from their chunk files,
  training starts over);
- redo: forced (`--force STAGE`), or an earlier stage it reads from runs again: run afresh;
- changed: its settings differ from those it ran with: refused, before anything runs, unless forced.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cai.core.children import cai_env
from cai.core.errors import CaiError
from cai.core.run import ProcessLock, RunDir, atomic_write, now
from cai.io.yaml_errors import did_you_mean
from cai.runner.iterations import write_iterations
from cai.runner.pipeline_file import SPECS, Pipeline, PlannedStage

err = Console(stderr=True, soft_wrap=True, highlight=False)
SECTION = "pipeline"  # the manifest's section of `cai run`'s records


@dataclass
class Step:
    stage: PlannedStage
    state: str  # done, to do, resume, redo, changed, left out
    why: str = ""

    @property
    def runs(self) -> bool:
        return self.state in ("to do", "resume", "redo")


def _check_names(pipeline: Pipeline, names: list[str], flag: str) -> None:
    planned = [s.name for s in pipeline.stages]
    for name in names:
        if name not in planned:
            where = "names no stage" if name.rpartition("/")[2] not in SPECS else "is not a stage of this file"
            raise CaiError(f"{flag} {name}: {where}{did_you_mean(name, planned)}; its stages: {', '.join(planned)}")


def plan(pipeline: Pipeline, start: str | None = None, until: str | None = None,
         force: tuple[str, ...] = ()) -> list[Step]:
    """What a run would do with each stage, from the manifest's records."""
    _check_names(pipeline, [n for n in (start, until) if n], "--from" if start else "--until")
    _check_names(pipeline, list(force), "--force")
    names = [s.name for s in pipeline.stages]
    first = names.index(start) if start else 0
    last = names.index(until) if until else len(names) - 1
    if first > last:
        raise CaiError(f"--from {start} comes after --until {until}")
    records = RunDir(pipeline.run).manifest().get(SECTION, {})
    steps, rerun = [], set()
    for index, stage in enumerate(pipeline.stages):
        record = records.get(stage.name)
        if not first <= index <= last:
            step = Step(stage, "left out", "--from/--until")
        elif stage.name in force:
            step = Step(stage, "redo", "--force")
        elif record is None:
            step = Step(stage, "to do")
        elif record.get("fingerprint") != stage.fingerprint:
            step = Step(stage, "changed", _changes(record.get("settings", {}), stage.settings))
        else:
            stale = [d for d in stage.deps if d in rerun
                     or d in records and records[d].get("id") != record.get("after", {}).get(d)]
            if stale:
                step = Step(stage, "redo", f"after {', '.join(stale)}")
            elif _finished(stage, record):
                step = Step(stage, "done")
            elif record.get("status") == "done":
                step = Step(stage, "redo", f"{stage.done_file} is gone")
            else:
                step = Step(stage, "resume", "interrupted" if record.get("status") == "running" else "it failed")
        if step.runs:
            rerun.add(stage.name)
        steps.append(step)
    return steps


def _finished(stage: PlannedStage, record: dict) -> bool:
    """A training stage whose model was saved counts as done even if the run was killed before it
    was recorded: its cai_train.json is removed before each training starts."""
    if not stage.done_file.exists():
        return False
    return record.get("status") == "done" or stage.spec.kind == "train"


def _changes(before: dict, after: dict) -> str:
    def shown(settings: dict, key: str) -> str:
        return json.dumps(settings[key]) if key in settings else "default"

    changed = [f"{k}: {shown(before, k)} → {shown(after, k)}"
               for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    return "; ".join(changed) or "other inputs"


def show(steps: list[Step], pipeline: Pipeline, console: Console) -> None:
    table = Table(title=f"cai run {pipeline.path}", title_justify="left")
    for column in ("stage", "plan", "why", "output"):
        table.add_column(column)
    colour = {"done": "green", "changed": "red", "left out": "dim"}
    for step in steps:
        style = colour.get(step.state, "yellow")
        table.add_row(step.stage.name, f"[{style}]{step.state}[/{style}]", step.why, _shown(step.stage.output))
    console.print(table)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def refuse_changed(steps: list[Step]) -> None:
    changed = [s for s in steps if s.state == "changed"]
    if changed:
        lines = [f"{s.stage.name}: its settings changed since it ran ({s.why})" for s in changed]
        names = " ".join(f"--force {s.stage.name}" for s in changed)
        raise CaiError("\n".join(lines) + f"\nrun again with {names} to redo (the stages after it follow), "
                       "or use another `run:` folder")


def run(pipeline: Pipeline, steps: list[Step], flags: list[str]) -> list[tuple[str, str]]:
    """Run the steps that are not done, in order; each stage's record is written as it starts and
    ends. Returns (stage, what happened) for the summary."""
    refuse_changed(steps)
    rundir = RunDir(pipeline.run)
    pipeline.run.mkdir(parents=True, exist_ok=True)
    lock = ProcessLock(pipeline.run / ".pipeline.lock")  # the run folder's kind of lock: it dies with us
    if not lock.acquire():
        raise CaiError(f"{pipeline.run} is in use by another `cai run`; wait for it to end")
    summary, ids = [], {}
    try:
        to_run = [s for s in steps if s.runs]
        for step in steps:
            stage = step.stage
            if not step.runs:
                summary.append((stage.name, step.state))
                continue
            records = rundir.manifest().get(SECTION, {})
            after = {d: ids.get(d, records.get(d, {}).get("id")) for d in stage.deps}
            err.rule(f"[bold]{stage.name}[/bold] ({to_run.index(step) + 1}/{len(to_run)}: {step.state}"
                     f"{', ' + step.why if step.why else ''})")
            started, clock = now(), time.perf_counter()
            _record(rundir, stage, status="running", started=started, after=after)
            returncode = _run_stage(pipeline, step, flags)
            seconds = round(time.perf_counter() - clock, 1)
            if returncode != 0 or not stage.done_file.exists():
                _record(rundir, stage, status="failed", returncode=returncode, started=started, seconds=seconds)
                reason = f"exit {returncode}" if returncode else f"{stage.done_file} was not written"
                raise CaiError(f"stage {stage.name} failed ({reason}); fix the cause and run `cai run "
                               f"{pipeline.path}` again: the finished stages are kept")
            ids[stage.name] = uuid.uuid4().hex[:12]
            _record(rundir, stage, status="done", id=ids[stage.name], after=after, started=started,
                    finished=now(), seconds=seconds)
            summary.append((stage.name, f"ran in {seconds:.0f} s"))
            if stage.spec.name == "eval_policies" and stage.name.startswith("iter-"):
                _iterations(pipeline)
    finally:
        lock.release()
    return summary


def _iterations(pipeline: Pipeline) -> None:
    """RUN/iterations.json from every iteration's eval_policies finished so far."""
    evaluations = [(int(s.name.split("/")[0].removeprefix("iter-")), s.done_file) for s in pipeline.stages
                   if s.spec.name == "eval_policies" and s.name.startswith("iter-")]
    if written := write_iterations(pipeline.run, evaluations):
        err.print(f"iterations: {_shown(written)}")


def _record(rundir: RunDir, stage: PlannedStage, **info) -> None:
    rundir.record_stage(stage.name, {"command": ["cai", *stage.spec.command, *stage.argv], "settings": stage.settings,
                                     "fingerprint": stage.fingerprint, "output": str(stage.output), **info},
                        section=SECTION)


def _run_stage(pipeline: Pipeline, step: Step, flags: list[str]) -> int:
    """The stage's command in its own process, in the pipeline file's folder; its exit status."""
    stage = step.stage
    options = stage.argv
    if stage.spec.kind == "chunks" and step.state == "redo":
        options = [*options, "--force"]  # its inputs or settings were redone: start it afresh
    if stage.spec.kind == "train":
        (stage.output / "cai_train.json").unlink(missing_ok=True)  # it is done when a new one is there
    words = [*stage.spec.command, *options]
    err.print(f"[dim]cd {pipeline.base} && cai {' '.join(words)}[/dim]")
    stdout = subprocess.PIPE if stage.spec.kind == "stdout" else None
    proc = subprocess.Popen([sys.executable, "-m", "cai", *flags, *words], cwd=pipeline.base, stdout=stdout,
                            text=True, env=cai_env(), preexec_fn=_die_with_parent)
    try:
        captured, _ = proc.communicate()
    except BaseException:  # Ctrl-C: the stage stops too, and is resumed next time
        proc.kill()
        proc.wait()
        raise
    if proc.returncode == 0 and stage.spec.kind == "stdout":
        atomic_write(stage.output, lambda f: f.write(captured))
        sys.stdout.write(captured)
    return proc.returncode


def _die_with_parent() -> None:
    """A stage dies with `cai run`, even when that is killed with SIGKILL (Linux), so that a rerun
    never finds the run folder held by an orphan."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
