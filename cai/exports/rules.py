"""The rule classifier's data set, from the judge's rule scores (`cai export rules`).

Each rule score row (one response, every rule) becomes one row per rule: the conversation as
`prompt`, the response as `completion`, the rule's id, text and weight, and the judge's p_follows
as a soft `label`. Rows can be held back by prompt id, so that no prompt is in both sets and the
rule model's agreement with the judge can be measured on rows it never saw.
"""

from __future__ import annotations

from pathlib import Path

from cai.constitution.principles import rng_for
from cai.constitution.schema import LoadedConstitution
from cai.core.errors import CaiError
from cai.core.records import Message, RuleRow, RuleScoreRecord
from cai.core.run import RunDir, now, read_jsonl, write_jsonl


def rule_rows(records: list[RuleScoreRecord], constitution: LoadedConstitution) -> list[RuleRow]:
    """One row per (response, rule); the rule texts come from the constitution the judge read."""
    rules = {r.id: r for r in constitution.constitution.rules}
    rows = []
    for record in records:
        judged_with = record.provenance.constitution_sha256
        if judged_with != constitution.sha256:
            raise CaiError(
                f"row {record.id} was judged under constitution sha256 {judged_with}, not "
                f"{constitution.path} ({constitution.sha256}): pass the constitution `cai rules` used"
            )
        for rule_id, p_follows in record.scores.items():
            rule = rules[rule_id]
            rows.append(RuleRow(
                prompt=record.prompt,
                completion=[Message(role="assistant", content=record.response)],
                rule_id=rule_id,
                rule=rule.rule,
                weight=rule.weight,
                label=p_follows,
                id=record.id,
                response_index=record.response_index,
            ))
    return rows


def hold_back(rows: list[RuleRow], share: float, seed: int = 0) -> tuple[list[RuleRow], list[RuleRow]]:
    """(kept, held back): `share` of the prompt ids (rounded, and at least one where the share is
    above 0 and there are two ids or more) are held back, all the rows of an id together; which
    ids is a seeded draw, so the same rows and seed hold back the same ids."""
    if not 0 <= share < 1:
        raise CaiError("--heldout must be at least 0 and below 1")
    ids = sorted({row.id for row in rows}, key=lambda i: rng_for(seed, i, "heldout").random())
    n = min(max(round(share * len(ids)), 1 if share > 0 else 0), max(len(ids) - 1, 0))
    held = set(ids[:n])
    return [r for r in rows if r.id not in held], [r for r in rows if r.id in held]


def export_rules(run: RunDir, constitution: LoadedConstitution, output: Path | None = None,
                 heldout: float = 0.0, seed: int = 0) -> dict:
    """RUN/rule_scores.jsonl → `output` (default RUN/rules.jsonl), and with `heldout` the rows of
    that share of prompts in RUN/rules_heldout.jsonl. Returns what it wrote, as recorded."""
    source = run.require("rule_scores.jsonl", "cai rules")  # before the lock: a mistyped --run is not created
    with run.locked():
        records = read_jsonl(source, RuleScoreRecord)
        kept, held = hold_back(rule_rows(records, constitution), heldout, seed)
        output = output or run.file("rules.jsonl")
        write_jsonl(output, kept)
        info = {"output": str(output), "rows_in": len(records), "rows_out": len(kept), "heldout": heldout,
                "seed": seed, "constitution_sha256": constitution.sha256}
        if heldout:
            held_file = output.with_name(output.stem + "_heldout" + output.suffix)
            write_jsonl(held_file, held)
            info.update(heldout_output=str(held_file), heldout_rows=len(held))
        run.record_stage("export_rules", {**info, "finished": now()})
    return info
