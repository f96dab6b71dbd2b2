"""The dataset card (README.md): huggingface_hub's `DatasetCard`, its YAML header (configurations and
their data files, license, task categories, tags, size category) and a body written from the run's
manifest: how the data was made, the constitution, the models, sampling, the judge, counts in and
out per stage, rows left out per quality flag, the judge's agreement with people, how to load each
configuration, and the paper to cite. Every path or command taken from the manifest goes through
`cai.publish.clean`, so the card holds nothing of this machine's."""

from __future__ import annotations

import json

from cai.publish.clean import public_name, scrub
from cai.publish.configs import CONFIGS
from cai.publish.files import Copied
from cai.report.stats import drop_counts

CITATION = """@misc{bai2022constitutional,
  title = {Constitutional AI: Harmlessness from AI Feedback},
  author = {Bai, Yuntao and Kadavath, Saurav and Kundu, Sandipan and Askell, Amanda and Kernion, Jackson and others},
  year = {2022},
  eprint = {2212.08073},
  archivePrefix = {arXiv},
  primaryClass = {cs.CL}
}"""
STEPS = {
    "generate": "SL-CAI: the model answered each red-team prompt",
    "critique": "SL-CAI: the model critiqued its answer against a principle drawn from the constitution, then revised it, round after round",
    "export_sft": "SL-CAI: the final revisions became the supervised set",
    "sample": "RL-CAI: the policy wrote several answers per prompt",
    "label": "RL-CAI: the AI judge compared each pair of answers under preference principles; its option probabilities are the soft labels",
    "export_prefs": "RL-CAI: the confident, unflagged pairs became the preference set",
    "rules": "the judge asked, for every response and rule, whether the response follows it",
    "export_rules": "the rule scores became the rule classifier's rows",
    "redteam_expand": "the model wrote new red-team prompts from few-shot prompts of seed prompts",
    "eval_policies": "policies answered held-out prompts and the judge compared them",
    "eval_judge": "the judge labelled pairs people had labelled, to measure its agreement",
}
TAGS = ["constitutional-ai", "rlaif", "synthetic", "cai"]
JUDGE_KEYS = ("judge_model", "style", "swap", "principles_per_pair", "cot", "cot_bounds", "keep_flagged", "drop_flags", "seed")
AGREEMENT_KEYS = ("n", "accuracy", "position_consistency", "first_position_rate", "mean_confidence", "ece")


def size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "n>10M"


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return scrub(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows])


def _made(manifest: dict) -> str:
    lines = []
    for name, entry in manifest.get("stages", {}).items():
        model = entry.get("model") or entry.get("judge_model")
        counts = f"{entry['rows_in']} → {entry['rows_out']} rows" if "rows_in" in entry and "rows_out" in entry else ""
        details = "; ".join(d for d in (f"model {public_name(model)}" if isinstance(model, str) else "", counts) if d)
        lines.append(f"- `{name}`{f' ({details})' if details else ''}: {STEPS.get(name, 'a stage of cai')}")
    text = "\n".join(lines) or "- the manifest records no stage"
    commands = [" ".join(entry["command"]) for entry in manifest.get("pipeline", {}).values() if entry.get("command")]
    if commands:
        text += ("\n\nMade by `cai run pipeline.yaml` (the file is in this folder), which ran:\n\n```bash\n"
                 + scrub("\n".join(commands)) + "\n```")
    return text


def _constitution(copied: Copied) -> str:
    c = copied.loaded.constitution
    parts = [f"`{copied.file}`: {c.name} (version {c.version}), sha256 `{copied.loaded.sha256}`."]
    if copied.few_shot:
        parts.append("Few-shot files: " + ", ".join(f"`{f}` (sha256 `{s}`)" for f, s in copied.few_shot.items()) + ".")
    parts.append("\nCritique and revision principles (SL-CAI):\n\n"
                 + _table(["id", "critique", "revision", "weight"], [[p.id, p.critique, p.revision, p.weight] for p in c.critique_revision]))
    if c.preference:
        parts.append("\nPreference principles (the judge's questions, RL-CAI):\n\n"
                     + _table(["id", "question", "tags", "weight"], [[p.id, p.question, ", ".join(p.tags), p.weight] for p in c.preference]))
    if c.rules:
        parts.append("\nRules:\n\n" + _table(["id", "rule", "weight"], [[r.id, r.rule, r.weight] for r in c.rules]))
    return "\n".join(parts)


def models(manifest: dict) -> dict[str, dict]:
    """public name -> {"stages": [...], "fingerprint": ...} for every model the stages used."""
    from cai.publish.fingerprint import model_fingerprint

    found: dict[str, dict] = {}
    for stage, entry in manifest.get("stages", {}).items():
        named = [entry.get(k) for k in ("model", "judge_model")]
        named += [p.get("model") for p in (entry.get("policies") or {}).values() if isinstance(p, dict)]
        for model in [m for m in named if isinstance(m, str) and m]:
            item = found.setdefault(public_name(model), {"stages": [], "fingerprint": model_fingerprint(model, entry.get("engine_config"))})
            item["stages"].append(stage)
    return found


def _sampling(manifest: dict) -> list[list]:
    rows = []
    for stage, entry in manifest.get("stages", {}).items():
        sampling = entry.get("sampling")
        if isinstance(sampling, dict):
            rows.append([stage, *(sampling.get(k, "") for k in ("temperature", "top_p", "max_tokens", "seed")),
                         entry.get("style", ""), entry.get("rounds", entry.get("n", ""))])
    return rows


def _judge(manifest: dict) -> str:
    parts = []
    for stage, entry in manifest.get("stages", {}).items():
        if "judge_model" not in entry:
            continue
        settings = {k: (public_name(entry[k]) if k == "judge_model" else entry[k]) for k in JUDGE_KEYS if k in entry}
        if "swap" in entry:
            settings["orders"] = "both (AB and BA, averaged: position bias cancels)" if entry["swap"] else "one, drawn per pair"
        parts.append(f"`{stage}`:\n\n" + _table(["setting", "value"], [[k, v] for k, v in settings.items()]))
    return "\n\n".join(parts) or "No judge ran in this run."


def _counts(manifest: dict) -> list[list]:
    return [[stage, entry.get("rows_in", ""), entry.get("rows_out", entry.get("kept", "")), entry.get("errors", "")]
            for stage, entry in manifest.get("stages", {}).items()]


def _agreement(summary: dict | None) -> str:
    if not summary:
        return "`cai eval judge` did not run for this run: the judge's agreement with people is not measured here."
    rows = [[k, summary[k]] for k in AGREEMENT_KEYS if k in summary]
    rows += [[k, public_name(summary[k]) if k == "judge_model" else summary[k]]
             for k in ("judge_model", "swap", "principles_per_pair", "cot") if k in summary]
    return ("The judge labelled pairs whose better answer people chose (`cai eval judge`): accuracy is the share where it "
            "favours the people's choice (0.5 is chance), ece its expected calibration error.\n\n" + _table(["measure", "value"], rows))


def _loading(written: dict[str, dict[str, int]], repo: str) -> str:
    lines = ["```python", "from datasets import load_dataset", ""]
    lines += [f'{name} = load_dataset("{repo}", "{name}")' for name in written]
    lines += ["```"]
    if "sft" in written or "prefs" in written:
        lines += ["", "TRL's trainers take `sft` and `prefs` as they are:", "", "```python",
                  "from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer",
                  *([f'SFTTrainer(model="MODEL", train_dataset=load_dataset("{repo}", "sft", split="train"), '
                     'args=SFTConfig(output_dir="sft")).train()'] if "sft" in written else []),
                  *([f'DPOTrainer(model="MODEL", train_dataset=load_dataset("{repo}", "prefs", split="train"), '
                     'args=DPOConfig(output_dir="dpo")).train()'] if "prefs" in written else []),
                  "```"]
    return "\n".join(lines)


def build_card(manifest: dict, written: dict[str, dict[str, int]], infos: dict, copied: list[Copied], license: str,
               judge_summary: dict | None, pipeline_file: str | None, repo: str, title: str):
    """The card: `written` is config -> split -> rows, as the folder holds them; `infos` config ->
    its `datasets.DatasetInfo` (features, splits and sizes, in the header's `dataset_info`)."""
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard, DatasetCardData

    manifest = {**manifest, "stages": {k: v for k, v in manifest.get("stages", {}).items() if k != "publish"}}
    specs = {c.name: c for c in CONFIGS}
    total = sum(n for splits in written.values() for n in splits.values())
    data = DatasetCardData(
        license=license, pretty_name=title, task_categories=sorted({specs[n].task for n in written}),
        tags=TAGS + [t for t, names in (("dpo", ("prefs",)), ("sft", ("sft",))) if any(n in written for n in names)],
        size_categories=[size_category(total)],
        configs=[{"config_name": name, "data_files": [{"split": s, "path": f"{name}/{s}-*.parquet"} for s in splits]}
                 for name, splits in written.items()],
    )
    DatasetInfosDict(infos).to_dataset_card_data(data)
    model_rows = [[name, ", ".join(m["stages"]), m["fingerprint"]] for name, m in models(manifest).items()]
    drops = drop_counts(manifest)
    sections = [
        f"# {title}",
        "Data made with `cai`, a Constitutional AI data engine: a written constitution turned into "
        "training data as in Bai et al. 2022 (SL-CAI critiques and revisions; RL-CAI soft preference labels from an AI "
        "judge). Every row keeps its `provenance` (model, sampling, style, seed, the constitution's sha256).",
        "## Configurations\n\n" + _table(["config", "splits (rows)", "what"],
                                          [[n, ", ".join(f"{s} {k}" for s, k in splits.items()), specs[n].what]
                                           for n, splits in written.items()]),
        "Nested fields (`prompt` messages, `judgements`, `steps`, `provenance`) are structs and lists of structs; "
        "mappings with free keys (`provenance.sampling`, rule_scores' `scores`) are JSON strings. A `test` split is "
        "what the run held back.",
        "## How it was made\n\n" + _made(manifest),
        "## Constitution\n\n" + ("\n\n".join(_constitution(c) for c in copied) or "No stage of this run read a constitution."),
        "## Models\n\nNamed as given (a local folder by its name). The fingerprint is that of the model's files, as "
        "cai's request cache keys them.\n\n" + (_table(["model", "stages", "fingerprint"], model_rows) if model_rows else "None recorded."),
        "## Sampling\n\n" + _table(["stage", "temperature", "top_p", "max_tokens", "seed", "style", "rounds / n"], _sampling(manifest)),
        "## Judge\n\n" + _judge(manifest),
        "## Counts per stage\n\n" + _table(["stage", "rows in", "rows out", "errors"], _counts(manifest)),
        "## Quality flags: rows flagged and left out\n\n`flagged: F` counts rows that carry the flag F (a generated "
        "text cut off at the token limit, repeating itself, talking about the critique instead of answering, or empty); "
        "`left_out` counts the rows an export left out for them (none where flagged rows were kept).\n\n" + (_table(["stage", "what", "rows"], [list(d) for d in drops])
                                                             if drops else "No row was flagged or left out."),
        "## The judge's agreement with people\n\n" + _agreement(judge_summary),
        "## How to load\n\n" + _loading(written, repo),
        *([f"## Pipeline\n\n`{pipeline_file}` is the pipeline file that produced the run (`cai run {pipeline_file}`), "
           "with server addresses and absolute paths removed."] if pipeline_file else []),
        "## Citation\n\n```bibtex\n" + CITATION + "\n```",
    ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
