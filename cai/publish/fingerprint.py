"""A model's fingerprint for the card: the one its stage recorded (the fingerprint of the model's
files, and its dtype), else that of its local folder now; never its path."""

from __future__ import annotations

import re
from pathlib import Path

from cai.engine.models import DEFAULT_MODEL, cai_home, files_fingerprint

FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def local_folder(model: str) -> Path | None:
    """The model's folder on this machine, without preparing the default model if it is absent."""
    path = cai_home() / "models" / DEFAULT_MODEL if model == DEFAULT_MODEL else Path(model).expanduser()
    return path if (path / "config.json").is_file() else None


def model_fingerprint(model: str, engine_config: dict | None = None) -> str:
    record = engine_config or {}
    for key, what in (("model_files", "files"), ("tokenizer_fingerprint", "tokenizer")):
        if isinstance(record.get(key), str) and FINGERPRINT.fullmatch(record[key]):
            dtype = f", {record['dtype']}" if record.get("dtype") else ""
            return f"{what} {record[key]}{dtype}"
    folder = local_folder(model)
    return f"files {files_fingerprint(folder)} (now)" if folder else "not recorded (not a local folder here)"
