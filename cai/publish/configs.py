"""Which run files become which configuration of the published dataset, and how their rows are
flattened for Parquet.

Each configuration is one kind of row of `cai.core.records`; its schema (the `datasets` Features) is
derived from that pydantic model, so that every Parquet file of a configuration has the same
columns and types whatever its rows hold (a column that is None in every row is still a string
column, a mixed preference set's human rows still have `judgements`). Nested records stay nested:
`judgements`, `steps`, `provenance`, `prompt` (messages) are structs and lists of structs, as
`load_dataset` returns them. Mappings with free keys (`provenance.sampling`, `scores` of
rule_scores: rule id -> p_follows) are JSON strings, since Parquet structs need fixed fields.
A file `NAME_heldout.jsonl` beside `NAME.jsonl` (what the run held back, e.g. `cai export rules
--heldout`) becomes the configuration's `test` split.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel

from cai.core.records import (
    ComparisonRecord,
    PreferenceRecord,
    RedTeamPrompt,
    RevisionRecord,
    RuleRow,
    RuleScoreRecord,
    SftRow,
)
from cai.core.run import read_jsonl
from cai.publish.clean import public_name


@dataclass(frozen=True)
class ConfigSpec:
    name: str
    files: tuple[str, ...]  # where the run holds its rows: the first that exists (relative to the run)
    record: type[BaseModel]
    task: str  # the Hub's task category
    what: str  # one line for the card

    def source(self, run: Path) -> Path | None:
        return next((run / f for f in self.files if (run / f).is_file()), None)


CONFIGS: tuple[ConfigSpec, ...] = (
    ConfigSpec("sft", ("sft.jsonl",), SftRow, "text-generation",
               "SL-CAI supervised set: the final revisions as TRL conversational `messages` (SFTTrainer)"),
    ConfigSpec("prefs", ("prefs.jsonl",), PreferenceRecord, "text-generation",
               "RL-CAI preference set as exported: `prompt`/`chosen`/`rejected`, soft label `p_chosen` and "
               "`margin` (RewardTrainer, DPOTrainer)"),
    ConfigSpec("preferences", ("preferences.jsonl",), PreferenceRecord, "text-generation",
               "every labelled pair, with each of the judge's `judgements` (principle, order, p_first)"),
    ConfigSpec("revisions", ("revisions.jsonl",), RevisionRecord, "text-generation",
               "the first answers and each round's critique and revision (`steps`)"),
    ConfigSpec("rule_scores", ("rule_scores.jsonl",), RuleScoreRecord, "text-classification",
               "responses judged against every rule: `scores` (JSON: rule id -> p_follows) and the weighted `score`"),
    ConfigSpec("rules", ("rules.jsonl",), RuleRow, "text-classification",
               "the rule classifier's rows: `prompt`, `completion`, `rule`, soft `label`"),
    ConfigSpec("prompts", ("prompts.jsonl",), RedTeamPrompt, "text-generation",
               "red-team prompts written by `cai redteam expand`, with the `seed_ids` shown"),
    ConfigSpec("eval_policies", ("comparisons.jsonl", "eval_policies/comparisons.jsonl"), ComparisonRecord,
               "text-generation", "the judge's comparisons of policies' answers (`cai eval policies`)"),
)
NAMES = tuple(c.name for c in CONFIGS)


def heldout(path: Path) -> Path:
    return path.with_name(f"{path.stem}_heldout{path.suffix}")


def splits(spec: ConfigSpec, run: Path) -> dict[str, Path]:
    """split -> the JSONL file holding it: train, and test where the run held rows back."""
    source = spec.source(run)
    if source is None:
        return {}
    held = heldout(source)
    return {"train": source, **({"test": held} if held.is_file() else {})}


def _shape(annotation):
    """A field's type as ("value", dtype) | ("json",) | ("list", shape) | ("struct", {name: shape})."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return _shape(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return _shape(type(args[0]))
    if origin in (list, tuple):
        return ("list", _shape(args[0]))
    if annotation is dict or origin is dict:
        return ("json",)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("struct", {name: _shape(f.annotation) for name, f in annotation.model_fields.items()})
    return ("value", {str: "string", int: "int64", float: "float64", bool: "bool"}[annotation])


def _feature(shape):
    from datasets import List, Value

    kind = shape[0]
    if kind == "value":
        return Value(shape[1])
    if kind == "json":
        return Value("string")
    if kind == "list":
        return List(_feature(shape[1]))
    return {name: _feature(s) for name, s in shape[1].items()}


def features(record: type[BaseModel]):
    from datasets import Features

    return Features(_feature(_shape(record)))


def _flat(shape, value, key: str = ""):
    if value is None:
        return None
    kind = shape[0]
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if kind == "list":
        return [_flat(shape[1], v) for v in value]
    if kind == "struct":
        return {name: _flat(s, value.get(name), name) for name, s in shape[1].items()}
    return public_name(value) if key == "model" else value  # a model's local path becomes its name


def rows(path: Path, record: type[BaseModel]) -> list[dict]:
    """The file's rows, validated by their record model and flattened to its Parquet schema."""
    shape = _shape(record)
    return [_flat(shape, r.model_dump(mode="json")) for r in read_jsonl(path, record)]


@dataclass(frozen=True)
class Written:
    rows: int
    num_bytes: int  # in memory (Arrow)
    size: int  # of the Parquet file


def write_split(path: Path, record: type[BaseModel], out: Path) -> Written:
    """One split as Parquet through `datasets`."""
    from datasets import Dataset

    data = Dataset.from_list(rows(path, record), features=features(record))
    out.parent.mkdir(parents=True, exist_ok=True)
    data.to_parquet(str(out))
    return Written(len(data), data.data.nbytes, out.stat().st_size)


def info(spec: ConfigSpec, written: dict[str, Written]):
    """The configuration's `dataset_info` for the card: features, splits, sizes. `load_dataset` keys
    its cache of a local folder by these (and by the card's data file patterns, which are the same
    for every published folder), so without them a folder published again, or another with the
    same name, would load the rows cached from the first."""
    from datasets import DatasetInfo, SplitDict, SplitInfo

    splits = SplitDict({s: SplitInfo(s, num_bytes=w.num_bytes, num_examples=w.rows) for s, w in written.items()})
    return DatasetInfo(config_name=spec.name, features=features(spec.record), splits=splits,
                       download_size=sum(w.size for w in written.values()),
                       dataset_size=sum(w.num_bytes for w in written.values()))
