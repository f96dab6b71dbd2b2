"""The constitution: principles for critiques and for the AI judge, and rules, validated by pydantic.

Users edit a YAML file; `load_constitution` returns it with its few-shot examples resolved and the
sha256 of its bytes (recorded in every output row), or raises InvalidFile listing every problem.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from cai.core.errors import CaiError
from cai.core.records import Message
from cai.io.inputs import sha256_of
from cai.io.yaml_errors import (
    InvalidFile,
    Problem,
    line_of,
    load_yaml,
    validation_problems,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _tag(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", value):
        raise ValueError(f"a tag is a lowercase identifier such as 'harmless' (a-z, 0-9, '-', '_'), not {value!r}")
    return value


Tag = Annotated[str, AfterValidator(_tag)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CritiqueRevisionPrinciple(Strict):
    id: Text
    critique: Text
    revision: Text
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)


class PreferencePrinciple(Strict):
    id: Text
    question: Text
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    tags: list[Tag] = Field([], description="groups this question scores, e.g. harmless, helpful")


class Rule(Strict):
    """A statement a single response follows or breaks, judged on its own (Sparrow's rules)."""

    id: Text
    rule: Text
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)


class ExampleStep(Strict):
    critique_request: Text
    critique: Text
    revision_request: Text
    revision: Text


class CritiqueExample(Strict):
    """A worked critique/revision shown before every request."""

    prompt: list[Message] = Field(min_length=1)
    response: Text
    steps: list[ExampleStep] = Field(min_length=1)


class PreferenceExample(Strict):
    """A worked judgement shown to the AI judge: the better and the worse response."""

    prompt: list[Message] = Field(min_length=1)
    better: Text
    worse: Text


class FewShot(Strict):
    """Each list is inline, or a path to a YAML file (relative to the constitution)."""

    critique_revision: str | list[CritiqueExample] = []
    preference: str | list[PreferenceExample] = []


class Constitution(Strict):
    name: str = "unnamed"
    version: int | str = 1
    description: str = ""
    few_shot: FewShot = FewShot()
    critique_revision: list[CritiqueRevisionPrinciple] = Field(min_length=1)
    preference: list[PreferencePrinciple] = []
    rules: list[Rule] = []

    def principles_by_tag(self, tags: list[str]) -> dict[str, list[PreferencePrinciple]]:
        """The preference principles carrying each tag, in the order asked; an unknown tag is an error."""
        found = {tag: [p for p in self.preference if tag in p.tags] for tag in tags}
        unknown = [tag for tag, principles in found.items() if not principles]
        if unknown:
            known = sorted({tag for p in self.preference for tag in p.tags})
            raise CaiError(
                f"no preference principle is tagged {', '.join(map(repr, unknown))}; "
                f"this constitution's tags: {', '.join(known) or 'none'}"
            )
        return found

    @property
    def critique_examples(self) -> list[CritiqueExample]:
        return self.few_shot.critique_revision  # type: ignore[return-value]  # resolved on load

    @property
    def preference_examples(self) -> list[PreferenceExample]:
        return self.few_shot.preference  # type: ignore[return-value]  # resolved on load


class LoadedConstitution(BaseModel):
    """A validated constitution, where it came from, and the hashes that identify it."""

    path: str
    sha256: str
    few_shot_sha256: dict[str, str]
    constitution: Constitution


def load_constitution(path: str | Path) -> LoadedConstitution:
    path = Path(path)
    data, node, problems = load_yaml(path)
    if not isinstance(data, dict):
        raise InvalidFile([Problem(str(path), 1, "a constitution must be a YAML mapping")])
    problems += _duplicate_ids(data, str(path), node)
    try:
        constitution = Constitution.model_validate(data)
    except ValidationError as e:
        raise InvalidFile(validation_problems(e, Constitution, str(path), node) + problems) from None
    if problems:
        raise InvalidFile(problems)
    hashes = {}
    few_shot = constitution.few_shot
    for field, item_type in (("critique_revision", CritiqueExample), ("preference", PreferenceExample)):
        ref = getattr(few_shot, field)
        if isinstance(ref, str):
            file = (path.parent / ref).resolve()
            setattr(few_shot, field, _load_examples(file, item_type))
            hashes[field] = sha256_of(file)
    return LoadedConstitution(
        path=str(path), sha256=sha256_of(path), few_shot_sha256=hashes, constitution=constitution
    )


def _load_examples(file: Path, item_type: type[BaseModel]) -> list:
    data, node, problems = load_yaml(file)
    try:
        examples = TypeAdapter(list[item_type]).validate_python(data if data is not None else [])
    except ValidationError as e:
        raise InvalidFile(validation_problems(e, item_type, str(file), node) + problems) from None
    if problems:
        raise InvalidFile(problems)
    return examples


def _duplicate_ids(data: dict, file: str, node) -> list[Problem]:
    problems = []
    for section in ("critique_revision", "preference", "rules"):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        # Only text ids can be duplicates; other types are reported by the schema.
        ids = [item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None for item in items]
        counts = Counter(i for i in ids if i is not None)
        for index, item_id in enumerate(ids):
            if item_id is not None and counts[item_id] > 1 and ids.index(item_id) != index:
                line = line_of(node, (section, index))
                problems.append(Problem(file, line, f"{section}: duplicate id '{item_id}'"))
    return problems
