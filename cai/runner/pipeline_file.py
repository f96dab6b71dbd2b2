"""The pipeline file of `cai run`: one YAML that names the stages of a whole run and their settings.

Each stage's keys are the options of its `cai` command, spelled as in YAML (`--max-tokens` is
`max_tokens`), so the file is read by the very commands it runs: every key is checked against the
command's options (an unknown one is named with its line and a "did you mean"), and click parses
every value, without running anything, so that a bad value is reported before any model loads.
A value may name an earlier stage's output (`"{train_sft}"`: the model it trained) or setting
(`"{generate.prompts}"`); when left out, the obvious one is filled in (see `STAGES`). Relative paths
are relative to the file's folder, where every stage runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cai.core.options import ENGINE, EXECUTOR
from cai.core.stage import fingerprint
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.models import DEFAULT_MODEL
from cai.io.yaml_errors import InvalidFile, Problem, did_you_mean, line_of, load_yaml
from cai.runner.registry import ITERATED, SPECS, STAGES, StageSpec
from cai.runner.values import argv_of, fingerprinted, plain, usage_error, yaml_key

TOP_KEYS = ("run", "model", "constitution", "engine", "executor", "iterations")
MANAGED = {"run": "the top-level `run`", "out": "the run folder (RUN/models/STAGE for models)",
           "output": "the run folder", "force": "`cai run --force STAGE`"}
# Options that decide how a stage runs, not what it writes: left out of its fingerprint, so that a
# run may be resumed on another executor or server.
RUNTIME = {"executor", "ray_address", "replicas", "gpus_per_replica", "cpus_per_replica", "servers", "judge_servers",
           "concurrency", "judge_concurrency", "timeout", "judge_timeout", "max_error_rate", "force",
           "pipeline"}  # publish's copy of this file: editing another stage does not change publish
REF = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")


@dataclass
class PlannedStage:
    name: str  # the stage's, or "iter-K/STAGE" for iteration K of an iterated one
    spec: StageSpec
    argv: list[str]  # after `cai`
    settings: dict  # every option's value (defaults included), as fingerprinted
    fingerprint: str
    deps: list[str]  # earlier stages whose output it reads
    output: Path  # in the run folder
    done_file: Path


@dataclass
class Pipeline:
    path: Path
    base: Path  # the file's folder: where stages run, what relative paths start from
    run: Path
    stages: list[PlannedStage]

    def stage(self, name: str) -> PlannedStage | None:
        return next((s for s in self.stages if s.name == name), None)


class _Unresolved(Exception):
    pass


class _Reader:
    """Reads one pipeline file, collecting every problem before giving up."""

    def __init__(self, path: Path, group):
        self.path, self.group = path, group
        self.file = str(path)
        self.problems: list[Problem] = []
        self.node = None
        self.key_deps: dict[tuple[str, str], list[str]] = {}  # (stage, key) -> the stages its value names
        self.order: list[str] = []  # planned names, in order
        self.made: dict[str, list[str]] = {}  # stage -> the outputs of its planned runs

    def problem(self, loc: tuple, message: str) -> None:
        self.problems.append(Problem(self.file, line_of(self.node, loc), message))

    def command(self, spec: StageSpec):
        command = self.group
        for part in spec.command:
            command = command.commands[part]
        return command

    def read(self) -> Pipeline:
        data, self.node, self.problems = load_yaml(self.path)
        if not isinstance(data, dict):
            raise InvalidFile([Problem(self.file, 1, "a pipeline file must be a YAML mapping of stages and settings")])
        for key in data:
            if key not in TOP_KEYS and key not in SPECS:
                hint = did_you_mean(key, [*TOP_KEYS, *SPECS]) or f"; the stages are {', '.join(SPECS)}"
                self.problem((key,), f"unknown key '{key}'{hint}")
        base = self.path.resolve().parent
        run_text = data.get("run")
        if not isinstance(run_text, str) or not run_text.strip():
            self.problem(("run",) if "run" in data else (), "`run:` (the run folder, relative to this file) is required")
            run_text = "run"
        context = {"run": run_text, "model": data.get("model") or DEFAULT_MODEL,
                   "constitution": data.get("constitution") or str(DEFAULT_CONSTITUTION), "pipeline": self.path.name}
        for key in ("model", "constitution"):
            if key in data and not isinstance(data[key], str):
                self.problem((key,), f"`{key}:` takes one name or path")
        sections = {name: self.section(data, name) for name in ("engine", "executor")}
        self.check_section_keys(sections)
        planned, values_of = [], {}
        iterations = data.get("iterations", 1)
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            self.problem(("iterations",), "`iterations:` takes a whole number, 1 or more")
            iterations = 1
        iterated = [s for s in STAGES if s.name in ITERATED and s.name in data] if iterations > 1 else []
        for spec in STAGES:
            if spec.name not in data or spec in iterated[1:]:
                continue
            rounds = [(f"iter-{k}/", {**context, "run": f"{run_text}/iter-{k}"}) for k in range(1, iterations + 1)]
            for prefix, where in rounds if spec in iterated else [("", context)]:
                for one in iterated if spec in iterated else [spec]:
                    stage = self.stage(one, data, where, sections, values_of, base, run_text, prefix)
                    if stage is not None:
                        planned.append(stage)
        if not planned and not self.problems:
            self.problem((), f"no stages: name at least one of {', '.join(SPECS)}")
        if self.problems:
            raise InvalidFile(list(dict.fromkeys(self.problems)))  # a section's problem once, not per stage
        return Pipeline(self.path, base, base / run_text, planned)

    def section(self, data: dict, name: str) -> dict:
        value = data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem((name,), f"`{name}:` must be a mapping of options")
            return {}
        return value

    def check_section_keys(self, sections: dict) -> None:
        allowed = {"engine": {ENGINE.flags.get(f.name, f.name) for f in ENGINE.fields} - {"model"},
                   "executor": {EXECUTOR.flags.get(f.name, f.name) for f in EXECUTOR.fields}}
        for name, section in sections.items():
            for key in section:
                if key not in allowed[name]:
                    extra = "; the model is the top-level `model:`" if key == "model" else ""
                    self.problem((name, key), f"unknown {name} option '{key}'{did_you_mean(key, allowed[name])}{extra}")

    def stage(self, spec, data, context, sections, values_of, base: Path, run_text: str,
              prefix: str = "") -> PlannedStage | None:
        """One stage's options, resolved and parsed by its command; its problems are collected, and
        the other keys still checked. `prefix` names an iteration's run of it ("iter-2/"), whose
        folder is context's `run`."""
        section = self.section(data, spec.name)
        command = self.command(spec)
        params = {yaml_key(p): p for p in command.params if p.opts}
        bad = set()  # keys with a problem already
        for key in section:
            if key in MANAGED:
                self.problem((spec.name, key), f"'{key}' is set by {MANAGED[key]}, not per stage")
                bad.add(key)
            elif key not in params:
                known = [k for k in params if k not in MANAGED]
                self.problem((spec.name, key), f"unknown {spec.name} option '{key}'{did_you_mean(key, known)} "
                                               f"(`cai {' '.join(spec.command)} --help` lists them)")
                bad.add(key)
        values, origin, deps = {}, {}, [self.made[r][-1][0] for r in spec.reads if r in self.made]
        planned_name, output = prefix + spec.name, f"{context['run']}/{spec.output}"
        local = {**context, "out": output}
        for key, alternatives in spec.defaults.items():  # the first alternative that resolves
            for alternative in ([] if key in section and key not in MANAGED else alternatives):
                used = []
                try:
                    values[key] = self.resolve(alternative, local, values_of, spec, used)
                except _Unresolved:
                    continue
                deps += used
                self.key_deps[spec.name, key] = used
                break
        for name, options in sections.items():
            for key, value in options.items():
                target = key if key in params else f"judge_{key}" if f"judge_{key}" in params else None
                if target and target not in section:
                    values[target], origin[target] = value, (name, key)
        for key, value in section.items():
            if key in bad:
                continue
            used = []
            try:
                values[key] = self.resolve(value, local, values_of, spec, used)
            except _Unresolved as e:
                self.problem((spec.name, key), str(e))
                bad.add(key)
                continue
            origin[key] = (spec.name, key)
            deps += used
            self.key_deps[spec.name, key] = used
        if spec.name == "export_prefs" and spec.name in self.made:  # an iteration's set holds the earlier ones' pairs
            values["include_prefs"] = [made for _, made in self.made[spec.name]]
            deps += [earlier for earlier, _ in self.made[spec.name]]
        values_of[spec.name] = values
        self.order.append(planned_name)
        self.made.setdefault(spec.name, []).append((planned_name, output))
        words = {}
        for key, value in values.items():
            try:
                words[key] = argv_of(params[key], value)
            except ValueError as e:
                self.problem(origin.get(key, (spec.name,)), f"{_where(origin, key, spec)}: {e}")
                bad.add(key)
        ctx = self.parse(spec, command, words, origin, bad)
        if ctx is None:
            return None
        settings = {}  # the values that differ from the command's defaults, and every input file
        for param in command.params:
            value = ctx.params.get(param.name)
            if param.name in RUNTIME or not isinstance(value, Path) and plain(value) == plain(param.default):
                continue
            where = origin.get(yaml_key(param), (spec.name,)) if param.opts else (spec.name,)
            settings[param.name] = self.setting(value, base, run_text, where, param.name)
        argv = [word for key in words for word in words[key]]
        return PlannedStage(planned_name, spec, argv, settings, fingerprint(settings), sorted(set(deps), key=self.order.index),
                            base / output, base / context["run"] / spec.done)

    def parse(self, spec: StageSpec, command, words: dict, origin: dict, bad: set):
        """Click's parse of the words, without running the command; every bad value is reported
        (each is left out in turn, to find the next)."""
        words = dict(words)
        while True:
            try:
                return command.make_context(" ".join(spec.command), [w for ws in words.values() for w in ws],
                                            resilient_parsing=False)
            except usage_error() as e:
                param = getattr(e, "param", None)
                key = yaml_key(param) if param is not None and param.opts else None
                if type(e).__name__ == "MissingParameter":
                    if key not in bad:  # not when its value had a problem of its own
                        makers = [m for a in spec.defaults.get(key, ()) for m, _ in REF.findall(a) if m in SPECS]
                        hint = f", or a stage {' or '.join(makers)} before it" if makers else ""
                        self.problem((spec.name,), f"{spec.name}: '{key}' is required (`cai {' '.join(spec.command)} "
                                                   f"--{key.replace('_', '-')}`){hint}")
                    return None
                where = origin.get(key, (spec.name,))
                self.problem(where, f"{_where(origin, key, spec)}: {e.message.removeprefix('Value error, ')}" if key else f"{spec.name}: {e.format_message()}")
                if key not in words:
                    return None
                del words[key]

    def setting(self, value, base: Path, run_text: str, where: tuple, name: str):
        """A parsed value as the fingerprint sees it (`cai.runner.values.fingerprinted`)."""
        def problem(message: str, problems: list | None = None) -> None:
            if problems:
                self.problems += problems
            else:
                self.problem(where, f"{where[0]}.{where[-1] if len(where) > 1 else name}: {message}")

        return fingerprinted(value, base, run_text, name, problem)

    def resolve(self, value, context: dict, values_of: dict, spec: StageSpec, used: list):
        """A value with its references replaced (the stages whose output it names added to `used`);
        raises _Unresolved naming what is wrong."""
        if isinstance(value, list):
            return [self.resolve(v, context, values_of, spec, used) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v, context, values_of, spec, used) for k, v in value.items()}
        if not isinstance(value, str):
            return value

        def replace(match: re.Match) -> str:
            name, key = match.groups()
            if key is None and name in context:
                return str(context[name])
            if name not in SPECS:
                raise _Unresolved(f"'{{{name}}}' names no stage{did_you_mean(name, [*SPECS, 'run', 'model', 'constitution'])}")
            if name not in values_of:
                later = list(SPECS).index(name) >= list(SPECS).index(spec.name)
                raise _Unresolved(f"'{{{name}}}' names {'a later stage' if later else 'a stage this file leaves out'}; "
                                  f"a stage can name an earlier one only")
            if key is None:
                made, output = self.made[name][-1]
                used.append(made)
                return output
            used.extend(self.key_deps.get((name, key), []))  # "{sample.prompts}" reads what sample's prompts read
            if key not in values_of[name]:
                raise _Unresolved(f"'{{{name}.{key}}}': {name} sets no '{key}'")
            return str(values_of[name][key])

        return REF.sub(replace, value)


def _where(origin: dict, key: str, spec: StageSpec) -> str:
    """How a problem names a value: its stage and key, or the section it came from."""
    source = origin.get(key)
    if source is None or source[0] == spec.name:
        return f"{spec.name}.{key}"
    return ".".join(source)


def read_pipeline(path: str | Path, commands) -> Pipeline:
    """The file's stages, resolved and parsed by their commands (`commands`: the click group of
    `cai`, which the CLI hands in); or InvalidFile with every problem."""
    return _Reader(Path(path), commands).read()
