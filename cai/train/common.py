"""What every training job shares: its config, its data, its record, and how it saves."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import yaml

from cai.core.errors import CaiError
from cai.core.run import atomic_write, now, package_versions
from cai.engine.models import resolve_model
from cai.io.inputs import sha256_of

log = logging.getLogger("cai")


@dataclasses.dataclass
class TrainingFlags:
    """The options every `cai train` job takes, turned into TRL config fields by `overrides`: the
    single place of their defaults, bounds and help."""

    config: Path | None = dataclasses.field(default=None, metadata={"help": "YAML whose keys are the TRL config's fields."})
    max_steps: int | None = dataclasses.field(default=None, metadata={"help": "Stop after N optimizer steps.", "min": 1})
    epochs: float | None = dataclasses.field(default=None, metadata={"help": "Passes over the data.", "min": 0.0})
    learning_rate: float | None = dataclasses.field(default=None, metadata={"help": "Learning rate.", "min": 0.0})
    batch_size: int | None = dataclasses.field(default=None, metadata={"help": "Per-device batch size.", "min": 1})
    lora: bool = dataclasses.field(default=False, metadata={"help": "Train LoRA adapters (peft), merged into the saved model."})
    sets: list[str] = dataclasses.field(default_factory=list, metadata={
        "help": "Any other TRL config field: KEY=VALUE (repeatable)."})

    def overrides(self) -> dict:
        """The TRL config fields these flags set; a flag not given keeps the value `--set` gave."""
        flags = {"max_steps": self.max_steps, "num_train_epochs": self.epochs, "learning_rate": self.learning_rate,
                 "per_device_train_batch_size": self.batch_size}
        return {**parse_sets(self.sets), **{k: v for k, v in flags.items() if v is not None}}


def build_config(config_cls, out: Path, config_file: Path | None, overrides: dict):
    """A TRL config: our defaults, then the YAML file's keys, then the flags that were given."""
    import torch

    values = {"output_dir": str(out), "report_to": [], "save_strategy": "no", "logging_steps": 1}
    if not torch.cuda.is_available():
        values["use_cpu"] = True
    if config_file is not None:
        try:
            from_file = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise CaiError(f"{config_file}: cannot read the config: {e}") from None
        if not isinstance(from_file, dict):
            raise CaiError(f"{config_file}: expected a mapping of {config_cls.__name__} fields")
        values.update(from_file)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CaiError(f"unknown {config_cls.__name__} field(s): {', '.join(unknown)}")
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as e:
        raise CaiError(f"invalid {config_cls.__name__}: {e}") from None


def parse_sets(pairs: list[str]) -> dict:
    """`--set key=value` flags; values are read as YAML (numbers, booleans, lists)."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CaiError(f"--set expects KEY=VALUE, not '{pair}'")
        values[key.strip()] = yaml.safe_load(value)
    return values


def model_path(name: str) -> str:
    path = resolve_model(name)
    if name != path or Path(path).exists() or "/" in name:
        return path
    raise CaiError(f"model '{name}' is neither the default model, a folder, nor a hub id")


def load_jsonl(path: Path, columns: tuple[str, ...] | None = None, made_by: str | None = None):
    """A JSONL file as a datasets Dataset: every column, or only `columns`.

    Only those are then read, so the other fields may change type from row to row (a mixed
    preference set's human rows have no judgements), which datasets' JSON loader refuses as soon as
    its first 10 MB of rows disagree with a later part.
    """
    from datasets import Dataset, load_dataset

    if not Path(path).is_file():
        raise CaiError(f"{path}: no such file")
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise CaiError(f"{path}: the file holds no rows")
    if columns is None:
        return load_dataset("json", data_files=str(path), split="train")
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise CaiError(f"{path}: invalid JSON: {e.msg}") from None
    missing = [c for c in columns if any(not isinstance(row, dict) or c not in row for row in rows)]
    if missing:
        hint = f"; make it with `{made_by}`" if made_by else ""
        raise CaiError(f"{path}: no {', '.join(missing)} column(s) in some rows{hint}")
    return Dataset.from_list([{c: row[c] for c in columns} for row in rows])


def lora_config(enabled: bool, task_type: str):
    if not enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type=task_type)


def distributed():
    """accelerate's view of the processes of this job: one, or those `accelerate launch` started."""
    from accelerate import PartialState

    return PartialState()


def save(model, tokenizer, out: Path) -> None:
    """Save a plain model (LoRA adapters merged) that vLLM and transformers load as it is; under
    several processes (each holds the same model), the main one saves it once the others are done."""
    state = distributed()
    state.wait_for_everyone()
    if not state.is_main_process:
        return
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


class Record:
    """`OUT/cai_train.json`: what ran (data hash, config, versions, how many processes) and what came
    of it: the final metrics and the trainer's log, one entry per logging step (`cai report` draws
    its curves)."""

    def __init__(self, out: Path, job: str, data: Path | None, model: str, config, extra: dict | None = None):
        self.out, self.clock = Path(out), time.perf_counter()
        self.info = {
            "job": job,
            "data": str(data) if data else None,
            "data_sha256": sha256_of(data) if data else None,
            "model": model,
            **(extra or {}),
            "config": json.loads(config.to_json_string()),
            "versions": package_versions(),
            "started": now(),
        }

    def done(self, metrics: dict, log_history: list[dict]) -> dict:
        """Write the record, from the main process only when `accelerate launch` started several."""
        state = distributed()
        self.info.update(finished=now(), seconds=round(time.perf_counter() - self.clock, 1), metrics=metrics,
                         log_history=log_history, processes=state.num_processes)
        if state.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write(self.out / "cai_train.json", lambda f: json.dump(self.info, f, indent=2, default=str))
        return self.info
