"""The preference model (TRL's RewardTrainer, plus the paper's soft labels), its evaluation, and DPO."""

from __future__ import annotations

from pathlib import Path

from cai.core.errors import CaiError
from cai.train.common import (
    Record,
    build_config,
    load_jsonl,
    lora_config,
    model_path,
    save,
)

LOSSES = ("soft", "margin", "hard")
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")


def soft_preference_loss(delta, p_chosen):
    """Cross-entropy between the judge's p_chosen and the model's sigmoid(r_chosen - r_rejected)."""
    import torch.nn.functional as F

    return -(p_chosen * F.logsigmoid(delta) + (1 - p_chosen) * F.logsigmoid(-delta)).mean()


def _soft_reward_trainer():
    """RewardTrainer trained against soft labels: TRL has no such option, so a small subclass."""
    from dataclasses import dataclass

    import torch
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    @dataclass
    class SoftCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            batch = super().torch_call(examples)
            batch["p_chosen"] = torch.tensor([e["p_chosen"] for e in examples], dtype=torch.float)
            return batch

    class SoftRewardTrainer(RewardTrainer):
        def _set_signature_columns_if_needed(self):
            self._signature_columns = ["chosen_ids", "rejected_ids", "p_chosen"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            p_chosen = inputs.pop("p_chosen")
            # TRL's own forward pass and metrics; its hard loss is replaced by the soft one.
            _, outputs = super().compute_loss(model, inputs, return_outputs=True)
            rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            loss = soft_preference_loss(rewards_chosen - rewards_rejected, p_chosen)
            if self.args.center_rewards_coefficient is not None:
                loss += self.args.center_rewards_coefficient * torch.mean((rewards_chosen + rewards_rejected) ** 2)
            return (loss, outputs) if return_outputs else loss

    return SoftRewardTrainer, SoftCollator


def _reward_model(path: str):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def train_pm(data: Path, model: str, out: Path, loss: str = "soft", config_file: Path | None = None,
             overrides: dict | None = None, lora: bool = False) -> dict:
    from trl import RewardConfig, RewardTrainer

    if loss not in LOSSES:
        raise CaiError(f"--loss must be one of {', '.join(LOSSES)}")
    config = build_config(RewardConfig, out, config_file, overrides or {})
    label = {"soft": ("p_chosen",), "margin": ("margin",), "hard": ()}[loss]
    dataset = load_jsonl(data, (*PREFERENCE_COLUMNS, *label), made_by="cai export prefs")
    reward_model, tokenizer = _reward_model(model_path(model))
    trainer_cls, collator = RewardTrainer, None
    if loss == "soft":
        trainer_cls, collator_cls = _soft_reward_trainer()
        collator = collator_cls(pad_token_id=tokenizer.pad_token_id)
    record = Record(out, "pm", data, model, config, {"loss": loss, "lora": lora})
    trainer = trainer_cls(model=reward_model, args=config, train_dataset=dataset, processing_class=tokenizer,
                          data_collator=collator, peft_config=lora_config(lora, "SEQ_CLS"))
    result = trainer.train()
    save(trainer.model, tokenizer, out)
    return record.done(result.metrics, trainer.state.log_history)


def eval_pm(model: str, pairs_file: Path, chosen_field: str = "chosen", rejected_field: str = "rejected",
            limit: int | None = None, batch_size: int = 8) -> dict:
    """Accuracy of a preference model on pairs whose better answer humans (or a judge) chose."""
    import torch

    from cai.io.inputs import load_pairs

    pairs, problems = load_pairs(pairs_file, chosen_field, rejected_field, limit, "eval_pm")
    if not pairs:
        raise CaiError(f"{pairs_file}: no usable pairs")
    reward_model, tokenizer = _reward_model(model_path(model))
    reward_model.eval()
    texts = []
    for row, chosen, rejected in pairs:
        prompt = [m.model_dump() for m in row.prompt]
        for answer in (chosen, rejected):
            conversation = prompt + [{"role": "assistant", "content": answer}]
            texts.append(tokenizer.apply_chat_template(conversation, tokenize=False))
    scores = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True,
                              truncation=True, max_length=1024, add_special_tokens=False)
            scores += reward_model(**batch).logits.squeeze(-1).tolist()
    margins = [scores[i] - scores[i + 1] for i in range(0, len(scores), 2)]
    correct = [1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins]
    return {
        "n": len(margins),
        "accuracy": round(sum(correct) / len(correct), 4),
        "mean_margin": round(sum(margins) / len(margins), 4),
        "errors": len(problems),
        "model": model,
    }


def train_dpo(data: Path, model: str, out: Path, config_file: Path | None = None,
              overrides: dict | None = None, lora: bool = False) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    config = build_config(DPOConfig, out, config_file, overrides or {})
    dataset = load_jsonl(data, PREFERENCE_COLUMNS, made_by="cai export prefs")
    path = model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    record = Record(out, "dpo", data, model, config, {"lora": lora})
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), args=config,
                         train_dataset=dataset, processing_class=tokenizer, peft_config=lora_config(lora, "CAUSAL_LM"))
    result = trainer.train()
    save(trainer.model, tokenizer, out)
    return record.done(result.metrics, trainer.state.log_history)
