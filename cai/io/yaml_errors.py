"""Read YAML safely and turn every problem into (file, line, message), the way a compiler would."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from cai.core.errors import CaiError


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class InvalidFile(CaiError):
    """Raised with every problem found in a file, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


def load_yaml(path: Path) -> tuple[object, yaml.Node | None, list[Problem]]:
    """The parsed data, its node tree (for line numbers) and duplicate-key problems.

    Syntax errors raise InvalidFile at once: nothing after them can be trusted.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidFile([Problem(str(path), None, "file not found")]) from None
    except UnicodeDecodeError as e:
        raise InvalidFile([Problem(str(path), None, f"not UTF-8 text ({e.reason})")]) from None
    except (OSError, ValueError) as e:
        raise InvalidFile([Problem(str(path), None, f"cannot read: {e}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(e, "problem", None) or str(e)
        raise InvalidFile([Problem(str(path), line, f"YAML syntax error: {reason}")]) from None
    except RecursionError:
        raise InvalidFile([Problem(str(path), None, "YAML nested too deeply")]) from None
    problems = [Problem(str(path), line, msg) for line, msg in _duplicate_keys(node)]
    return data, node, problems


def _duplicate_keys(node: yaml.Node | None, seen_nodes: set[int] | None = None) -> list[tuple[int, str]]:
    """PyYAML keeps the last of two equal keys silently; a constitution must not.

    Each node is visited once, so aliases (`*a`) cannot make the walk explode.
    """
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return []
    seen_nodes.add(id(node))
    found = []
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    found.append((key.start_mark.line + 1, f"duplicate key '{key.value}'"))
                seen.add(key.value)
            found += _duplicate_keys(value, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _duplicate_keys(item, seen_nodes)
    return found


def line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The line of the deepest node that `loc` (a pydantic error location) reaches."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not match:
                continue  # a union member's name, or a missing key: stay on the parent
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'X'?)' for the choice closest to a misspelt word, or nothing."""
    match = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def validation_problems(
    error: ValidationError, model: type[BaseModel], file: str, node: yaml.Node | None
) -> list[Problem]:
    """One Problem per pydantic error, with its line and a 'did you mean' for unknown keys."""
    problems = []
    for err in error.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'{did_you_mean(loc[-1], _field_names(model))}"
        elif err["type"] == "missing":
            message = f"missing key '{loc[-1]}'"
        else:
            message = f"{where}: {err['msg']}"
        problems.append(Problem(file, line_of(node, loc), message))
    return problems


def _field_names(model: type[BaseModel]) -> list[str]:
    """Every field name in a model and the models it contains (for typo hints)."""
    names, todo, seen = set(), [model], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for name, field in m.model_fields.items():
            names.add(name)
            todo += [t for t in _model_types(field.annotation)]
    return sorted(names)


def _model_types(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _model_types(arg)]
