"""Command-line options made from the config dataclasses, which hold every default, check and help.

A field's `metadata` gives its help and bounds; `ConfigOptions` turns a dataclass's fields into typer
options and builds the config back from them, and `with_options` adds such groups of options to a
command, so that every command that calls a model takes the same engine and executor options
without restating them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import typing
from typing import Annotated, Literal, Optional

import typer

from cai.engine.config import EngineConfig, parse_engine_args
from cai.engine.engine import SamplingConfig
from cai.executors import ExecutorConfig
from cai.stages.quality import QualityConfig


def default_of(cls, name: str):
    f = cls.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def option(cls, name: str, *flags: str, **overrides) -> typer.Option:
    """A typer option whose help and bounds come from the field's metadata."""
    meta = cls.__dataclass_fields__[name].metadata
    settings = {"help": meta.get("help"), "min": meta.get("min"), "max": meta.get("max")}
    return typer.Option(*flags, **{k: v for k, v in {**settings, **overrides}.items() if v is not None})


def _cli_type(tp):
    """The type typer sees: lists stay lists, `dict` fields are given as KEY=VALUE strings."""
    origin = typing.get_origin(tp)
    if tp is dict or origin is dict:
        return Optional[list[str]]
    if origin is list:
        return Optional[tp]
    return tp


@dataclasses.dataclass(frozen=True)
class _Field:
    """One option of a group: a field of the config, or of a config nested in it (`owner`)."""

    owner: str | None
    cls: type
    field: dataclasses.Field
    type: object

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def metadata(self):
        return self.field.metadata


def _fields(cls, skip: tuple) -> list[_Field]:
    """The fields of `cls` that are options (they have help), and those of a nested config whose
    field says `"options": True` (the settings only one backend reads, kept with it)."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("options"):
            found += [_Field(f.name, g.cls, g.field, g.type) for g in _fields(hints[f.name], skip)]
        elif f.name not in skip and "help" in f.metadata:
            found.append(_Field(None, cls, f, hints[f.name]))
    return found


class ConfigOptions:
    """The fields of `cls` (except `skip`) as options `--PREFIX-FIELD` (renamed by `flags`)."""

    def __init__(self, cls, argument: str, prefix: str = "", flags: dict | None = None, skip: tuple = (),
                 parse: dict | None = None, defaults: dict | None = None, helps: dict | None = None):
        self.cls, self.argument, self.prefix = cls, argument, prefix
        self.flags, self.parse, self.defaults, self.helps = flags or {}, parse or {}, defaults or {}, helps or {}
        self.fields = _fields(cls, skip)

    def _param(self, name: str) -> str:
        return self.prefix + name

    def _flag(self, name: str) -> str:
        return "--" + (self.prefix + self.flags.get(name, name)).replace("_", "-")

    def parameters(self) -> list[inspect.Parameter]:
        params = []
        for f in self.fields:
            flag = self._flag(f.name)
            default = self.defaults.get(f.name, default_of(f.cls, f.name))
            tp = _cli_type(f.type)
            if "choices" in f.metadata:
                tp = Literal[tuple(f.metadata["choices"])] if default is not None else Optional[Literal[tuple(f.metadata["choices"])]]
            if isinstance(default, (list, dict)):
                default = None
            params.append(inspect.Parameter(self._param(f.name), inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[tp, option(f.cls, f.name, flag, help=self._help(f))]))
        return params

    def _help(self, f: _Field) -> str:
        """The field's help (or this group's own), naming the group's flags as spelled here: the
        judge's `--judge-tokenizer` says "With --judge-server", not "With --server"."""
        text = self.helps.get(f.name, f.metadata["help"])
        for other in self.fields:
            text = text.replace("--" + self.flags.get(other.name, other.name).replace("_", "-"), self._flag(other.name))
        return text

    def argv(self, config) -> list[str]:
        """The options that give `config`, whole, to another `cai` command taking the same group
        (every field that is set; scalar, list and KEY=VALUE fields): how a job hands its settings
        to a subprocess."""
        args = []
        for f in self.fields:
            value = getattr(getattr(config, f.owner) if f.owner else config, f.name)
            if value is None:
                continue
            flag = self._flag(f.name)
            if isinstance(value, dict):
                args += [a for k, v in value.items() for a in (flag, f"{k}={json.dumps(v)}")]
            elif isinstance(value, list):
                args += [a for v in value for a in (flag, str(v))]
            else:
                args += [flag, str(value)]
        return args

    def build(self, values: dict, **fixed):
        """The config from the command's values (popped from `values`) and `fixed` fields."""
        kwargs, nested = {}, {}
        for f in self.fields:
            value = values.pop(self._param(f.name))
            if value is None and isinstance(default_of(f.cls, f.name), (list, dict)):
                value = default_of(f.cls, f.name)
            value = self.parse[f.name](value) if f.name in self.parse else value
            (nested.setdefault(f.owner, {}) if f.owner else kwargs)[f.name] = value
        hints = typing.get_type_hints(self.cls)
        kwargs |= {owner: hints[owner](**given) for owner, given in nested.items()}
        return self.cls(**{**kwargs, **fixed})


def with_options(*groups: ConfigOptions):
    """Add each group's options to a command; the command receives each group's config instead."""
    def wrap(fn):
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in {g.argument for g in groups}]
        params = own + [p for g in groups for p in g.parameters()]

        @functools.wraps(fn)
        def command(**values):
            for g in groups:
                values[g.argument] = g.build(values)
            return fn(**values)

        command.__signature__ = signature.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__
        return command
    return wrap


# The option groups of the engine, sampling, quality and executor configs, as the commands take them.
ENGINE = ConfigOptions(EngineConfig, "engine", flags={"servers": "server", "engine_args": "engine_arg"},
                       parse={"engine_args": parse_engine_args})
JUDGE_ENGINE = ConfigOptions(EngineConfig, "judge_engine", prefix="judge_",
                             flags={"servers": "server", "engine_args": "engine_arg"},
                             parse={"engine_args": parse_engine_args}, defaults={"model": None})
POLICY_ENGINE = ConfigOptions(EngineConfig, "engine", flags={"servers": "server", "engine_args": "engine_arg"},
                              parse={"engine_args": parse_engine_args}, defaults={"model": None})
EXECUTOR = ConfigOptions(ExecutorConfig, "executor")
QUALITY = ConfigOptions(QualityConfig, "quality")
SAMPLING = ConfigOptions(SamplingConfig, "sampling")
SAMPLING_HOT = ConfigOptions(SamplingConfig, "sampling", defaults={"temperature": 1.0})
DRAWS = {"seed": "Seeds the principle draws and sampling."}
SAMPLING_DRAWS = ConfigOptions(SamplingConfig, "sampling", helps=DRAWS)
SAMPLING_REDTEAM = ConfigOptions(SamplingConfig, "sampling", defaults={"temperature": 1.0, "max_tokens": 64},
                                 helps={"seed": "Seeds the seed prompts shown and sampling."})
POLICIES_ENGINE = ConfigOptions(EngineConfig, "engine", flags={"servers": "server", "engine_args": "engine_arg"},
                                parse={"engine_args": parse_engine_args}, skip=("model",))
