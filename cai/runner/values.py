"""Option values between a pipeline file and a click command: a YAML key for each option, a YAML
value as command-line words, a parsed value as compared with the option's default, and as the
stage's fingerprint sees it."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

from cai.constitution.schema import load_constitution
from cai.engine.models import files_fingerprint
from cai.io.inputs import sha256_of
from cai.io.yaml_errors import InvalidFile


def yaml_key(param) -> str:
    longs = [o for o in param.opts if o.startswith("--")]
    return (longs[0] if longs else param.opts[0]).lstrip("-").replace("-", "_")


def usage_error():
    """typer's usage errors (its own copy of click's from typer 0.25 on): BadParameter's base."""
    import typer

    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def plain(value):
    """A value as compared with an option's default: no options given is no value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return list(value) or None
    return value


def flag_of(param) -> str:
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def scalar(value) -> str:
    if isinstance(value, (list, dict)):
        raise ValueError("takes plain values, not nested lists or mappings")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def argv_of(param, value) -> list[str]:
    """One option's value as command-line words: flags from booleans, repeated options from lists
    (or a mapping, as KEY=VALUE pairs)."""
    if value is None:
        return []
    if param.param_type_name == "argument":  # a positional one, e.g. publish's RUN
        return [scalar(value)]
    flag = flag_of(param)
    if param.is_flag:
        if not isinstance(value, bool):
            raise ValueError(f"takes true or false, not {value!r}")
        if value:
            return [flag]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    if param.multiple:
        if isinstance(value, dict):
            items = [f"{k}={json.dumps(v)}" for k, v in value.items()]
        else:
            items = value if isinstance(value, list) else [value]
        return [word for item in items for word in (flag, scalar(item))]
    if isinstance(value, (list, dict)):
        raise ValueError("takes one value, not a list or mapping")
    return [flag, scalar(value)]


def local_path(text: str) -> bool:
    """A value that can only be a local path (not a hub id such as "org/name")."""
    return text.startswith((".", "/", "~")) or text.count("/") > 1


def fingerprinted(value, base: Path, run_text: str, name: str, problem):
    """A parsed value as the fingerprint sees it: outputs of the run by their place in it, input
    files by their content (a constitution with its few-shot files, a folder by its files), so that
    an edited input makes the stage 'changed' and a moved project does not. A missing input, or a
    broken constitution, is reported through `problem(message, problems=None)`."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [fingerprinted(v, base, run_text, name, problem) for v in value]
    if not isinstance(value, (str, Path)):
        return value
    text, run_prefix = str(value), run_text.rstrip("/")
    if text == run_prefix or text.startswith(run_prefix + "/"):
        return "{run}" + text[len(run_prefix):]
    if name.endswith("tokenizer") and local_path(text):
        value = Path(text)  # a tokenizer folder must be there now, not when a server stage starts
    if not isinstance(value, Path):
        return text
    path = base / value
    if not path.exists():
        problem(f"{value}: no such file or folder")
        return text
    if name == "constitution":
        try:
            loaded = load_constitution(path)
        except InvalidFile as e:
            problem("", e.problems)
            return text
        return {"sha256": loaded.sha256, "few_shot_sha256": loaded.few_shot_sha256}
    return {"sha256": sha256_of(path)} if path.is_file() else {"files": files_fingerprint(path)}
