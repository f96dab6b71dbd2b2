"""Rule models: one classifier that reads a rule and a conversation and says whether the reply
follows the rule, trained on the judge's soft labels, so that RL needs no judge in its loop.

The model is a sequence classifier with one output (transformers, num_labels=1): its logit is the
log-odds that the reply follows the rule, trained with binary cross-entropy against p_follows.
The rule is the last turn of its input, so that it sits next to the token the head reads.
`RuleReward` turns a rule model into a reward function for TRL's RLOO and GRPO trainers;
`eval_rules` and `eval_judge_rules` measure a rule model or the judge against labelled rows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cai.constitution.schema import Rule
from cai.core.errors import CaiError
from cai.core.records import Message
from cai.engine.engine import Engine, Failed
from cai.metrics.judge import summarize_binary
from cai.stages.dialogue import Style
from cai.stages.judge import p_x_better
from cai.stages.rules import judge_rules
from cai.train.common import (
    Record,
    build_config,
    load_jsonl,
    lora_config,
    model_path,
    save,
)
from cai.train.preference import _reward_model

COLUMNS = ("prompt", "completion", "rule", "label")
MAX_LENGTH = 1024


def rule_model_text(tokenizer, prompt: list[dict], completion: list[dict], rule: str) -> str:
    """The classifier's input: the conversation, then the rule as a question about the last reply."""
    question = {"role": "user", "content": f"Does your last reply follow this rule? {rule}"}
    return tokenizer.apply_chat_template([*prompt, *completion, question], tokenize=False)


def _tokenizer_for(tokenizer, max_length: int):
    """Truncate long inputs from the left: the reply and the rule, at the end, are what matter."""
    tokenizer.truncation_side = "left"
    tokenizer.model_max_length = max_length
    return tokenizer


def soft_bce_loss(logits, labels):
    """Binary cross-entropy between the judge's p_follows and sigmoid(logit)."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, labels)


def _soft_label_trainer():
    from transformers import Trainer

    class SoftLabelTrainer(Trainer):
        """transformers' Trainer with BCE on soft labels (its own loss for one float label is MSE)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = soft_bce_loss(outputs.logits.squeeze(-1), labels.to(outputs.logits.dtype))
            return (loss, outputs) if return_outputs else loss

    return SoftLabelTrainer


def rules_of(dataset) -> list[dict]:
    """Each rule in the data once, {id, rule, weight}; one id with two texts is an error."""
    rules = {}
    for rule_id, text, weight in zip(dataset["rule_id"], dataset["rule"], dataset["weight"]):
        seen = rules.setdefault(rule_id, {"id": rule_id, "rule": text, "weight": weight})
        if (seen["rule"], seen["weight"]) != (text, weight):
            raise CaiError(f"rule '{rule_id}' appears with two texts or weights; export from one constitution")
    return list(rules.values())


def train_rules(data: Path, model: str, out: Path, config_file: Path | None = None, overrides: dict | None = None,
                lora: bool = False, max_length: int = MAX_LENGTH) -> dict:
    from transformers import DataCollatorWithPadding, TrainingArguments

    config = build_config(TrainingArguments, out, config_file, overrides or {})
    dataset = load_jsonl(data)
    missing = [c for c in (*COLUMNS, "rule_id") if c not in dataset.column_names]
    if missing:
        raise CaiError(f"{data}: no {', '.join(missing)} column(s); export it with `cai export rules`")
    if "weight" not in dataset.column_names:
        dataset = dataset.add_column("weight", [1.0] * len(dataset))
    rules = rules_of(dataset)
    classifier, tokenizer = _reward_model(model_path(model))
    tokenizer = _tokenizer_for(tokenizer, max_length)

    def encode(row):
        text = rule_model_text(tokenizer, row["prompt"], row["completion"], row["rule"])
        encoded = tokenizer(text, truncation=True, add_special_tokens=False)
        return {**encoded, "labels": float(row["label"])}

    dataset = dataset.map(encode, remove_columns=dataset.column_names)
    if lora:
        from peft import get_peft_model

        classifier = get_peft_model(classifier, lora_config(True, "SEQ_CLS"))
    record = Record(out, "rules", data, model, config, {"lora": lora, "max_length": max_length, "rules": rules})
    trainer = _soft_label_trainer()(model=classifier, args=config, train_dataset=dataset,
                                    data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
    result = trainer.train()
    save(trainer.model, tokenizer, out)
    return record.done(result.metrics, trainer.state.log_history)


class RuleModel:
    """A trained rule model, loaded for scoring: the log-odds that a reply follows a rule."""

    def __init__(self, path: str, max_length: int = MAX_LENGTH, batch_size: int = 16):
        import torch

        self.path, self.batch_size = model_path(path), batch_size
        self.model, tokenizer = _reward_model(self.path)
        self.tokenizer = _tokenizer_for(tokenizer, max_length)
        self.model.to("cuda" if torch.cuda.is_available() else "cpu").eval()

    def log_odds(self, prompts: list[list[dict]], completions: list[list[dict]], rules: list[str]) -> list[float]:
        """One logit per (prompt, completion, rule)."""
        import torch

        texts = [rule_model_text(self.tokenizer, p, c, r) for p, c, r in zip(prompts, completions, rules)]
        logits = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                                       truncation=True, add_special_tokens=False).to(self.model.device)
                logits += self.model(**batch).logits[:, 0].float().tolist()
        return logits


def trained_rules(path: str) -> list[dict]:
    """The rules a rule model learned, from its `cai_train.json`."""
    record = Path(model_path(path)) / "cai_train.json"
    info = json.loads(record.read_text()) if record.is_file() else {}
    if info.get("job") != "rules":
        raise CaiError(f"{path} is not a rule model: train one with `cai train rules`")
    return info["rules"]


class RuleReward:
    """A TRL reward function (RLOO, GRPO): per completion, the mean over the rules, weighted by the
    constitution's weights, of the rule model's log-odds that it follows each rule; or, with weights
    fitted to people (`cai fit rules`), their weighted sum, on the scale of the human preference's
    logit. TRL logs it as `rewards/rules/*`, beside the preference model's; each rule's mean is
    logged as `rules/<id>`."""

    def __init__(self, path: str, weights: dict[str, float] | None = None):
        self.__name__ = "rules"  # the name TRL logs this reward under
        self.rules = trained_rules(path)
        self.total = sum(r["weight"] for r in self.rules)
        if weights is not None:
            ids = {r["id"] for r in self.rules}
            if set(weights) != ids:
                raise CaiError(f"the rule weights are for rules {', '.join(sorted(weights))} and {path} scores "
                               f"{', '.join(sorted(ids))}: fit them with the constitution the rule model learned")
            self.rules, self.total = [{**r, "weight": weights[r["id"]]} for r in self.rules], 1.0
        self.model = RuleModel(path)

    def __call__(self, prompts, completions, log_metric=None, **kwargs) -> list[float]:
        k, total = len(self.rules), self.total
        logits = self.model.log_odds([p for p in prompts for _ in self.rules],
                                     [c for c in completions for _ in self.rules],
                                     [r["rule"] for _ in prompts for r in self.rules])
        per_completion = [logits[i * k : (i + 1) * k] for i in range(len(prompts))]
        if log_metric is not None:
            for j, rule in enumerate(self.rules):
                log_metric(f"rules/{rule['id']}", sum(row[j] for row in per_completion) / len(per_completion))
        return [sum(r["weight"] * x for r, x in zip(self.rules, row)) / total for row in per_completion]


def eval_rules(model: str, data: Path, limit: int | None = None) -> dict:
    """A rule model's probabilities against a labelled set (`prompt`, `completion`, `rule`, `label`)."""
    rows, unlabelled = _labelled_rows(data, limit)
    scorer = RuleModel(model)
    logits = scorer.log_odds([r["prompt"] for r in rows], [r["completion"] for r in rows], [r["rule"] for r in rows])
    p = [0.5 * (1 + math.tanh(x / 2)) for x in logits]  # sigmoid, without overflow
    groups = [r.get("rule_id") or r["rule"] for r in rows]
    return {**summarize_binary(p, [float(r["label"]) for r in rows], groups), "unlabelled": unlabelled, "model": model}


def eval_judge_rules(data: Path, engine: Engine, style: Style, limit: int | None = None) -> dict:
    """The judge's p_follows (both orders) against the same kind of labelled set."""
    rows, unlabelled = _labelled_rows(data, limit)
    items = [([Message(**m) for m in r["prompt"]], r["completion"][-1]["content"],
              Rule(id=r.get("rule_id") or "rule", rule=r["rule"])) for r in rows]
    judged = [(r, js) for r, js in zip(rows, judge_rules(items, engine, style)) if not isinstance(js, Failed)]
    summary = summarize_binary([p_x_better(js) for _, js in judged], [float(r["label"]) for r, _ in judged],
                               [r.get("rule_id") or r["rule"] for r, _ in judged])
    return {**summary, "unlabelled": unlabelled, "errors": len(rows) - len(judged), "judge_model": engine.identity}


def _labelled_rows(data: Path, limit: int | None) -> tuple[list[dict], int]:
    """The rows with a label (of the first `limit`), and how many had none."""
    dataset = load_jsonl(data)
    missing = [c for c in COLUMNS if c not in dataset.column_names]
    if missing:
        raise CaiError(f"{data}: no {', '.join(missing)} column(s); a labelled set needs {', '.join(COLUMNS)}")
    rows = dataset.to_list()
    rows = rows[:limit] if limit else rows
    labelled = [r for r in rows if r["label"] is not None]  # a gold set's skipped items (cai review pull) have none
    if not labelled:
        raise CaiError(f"{data}: no row has a label")
    return labelled, len(rows) - len(labelled)
