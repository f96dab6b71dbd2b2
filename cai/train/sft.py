"""SL-CAI fine-tuning with TRL's SFTTrainer, the loss on the assistant's answer only."""

from __future__ import annotations

from pathlib import Path

from cai.train.common import (
    Record,
    build_config,
    load_jsonl,
    lora_config,
    model_path,
    save,
)


def to_prompt_completion(row: dict) -> dict:
    """The last assistant turn is what is learned; everything before it is the prompt."""
    messages = row["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def train_sft(data: Path, model: str, out: Path, config_file: Path | None = None,
              overrides: dict | None = None, lora: bool = False) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    config = build_config(SFTConfig, out, config_file, {"completion_only_loss": True, **(overrides or {})})
    path = model_path(model)
    dataset = load_jsonl(data)
    dataset = dataset.map(to_prompt_completion, remove_columns=dataset.column_names)
    tokenizer = AutoTokenizer.from_pretrained(path)
    record = Record(out, "sft", data, model, config, {"lora": lora})
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(lora, "CAUSAL_LM"),
    )
    result = trainer.train()
    save(trainer.model, tokenizer, out)
    return record.done(result.metrics, trainer.state.log_history)
