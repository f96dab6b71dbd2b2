"""Nothing machine-specific or secret leaves in a published folder: model paths become model
names, and text copied from this machine (the pipeline file, commands from the manifest) loses its
URLs, absolute paths and anything shaped like a key."""

from __future__ import annotations

import os
import re
from pathlib import Path

URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"\]},]+")
# a path that starts a word (at the start, or after a space, quote, '=', '[', '(' or ','), to its last part
ABSOLUTE = re.compile(r"(?<![^\s'\"=\[(,])/(?:[^\s'\"\]},:/`]+/)*([^\s'\"\]},:/`]+)")
KEY = re.compile(r"\b(?:hf_|sk-)[A-Za-z0-9_-]{16,}")
SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "CAI_API_KEY", "OPENAI_API_KEY")


def public_name(model: str) -> str:
    """A model as the card and the rows name it: a hub id or a given name as it is, a local folder
    by its own name (`/home/me/models/sl-cai` and `runs/walk/models/sl-cai` are `sl-cai`)."""
    if not isinstance(model, str) or not model:
        return model
    path = Path(model)
    looks_like_a_path = (path.is_absolute() or model.startswith(("./", "../", "~")) or model.count("/") > 1
                         or path.is_dir())
    return path.name or model if looks_like_a_path else model


def scrub(text: str) -> str:
    """Text with every secret from the environment, key-shaped word and URL replaced, and each
    absolute path cut to its last part."""
    for variable in SECRET_VARIABLES:
        if len(value := os.environ.get(variable, "")) >= 8:
            text = text.replace(value, "REDACTED_KEY")
    text = KEY.sub("REDACTED_KEY", text)
    text = URL.sub("REDACTED_URL", text)
    return ABSOLUTE.sub(lambda m: m.group(1), text)
