"""`cai redteam expand` as a job, through the CLI: rounds of generation stages until N prompts pass
the filter, every slot accounted for (kept, dropped for a counted reason, not needed, or failed),
prompts.jsonl as `cai generate` reads it, and a rerun that finishes from its chunks, byte for byte."""

import json
import time
from pathlib import Path

import pytest
from cli_run import cai

from cai.core.sources import PromptSource
from cai.data import DEMO_PROMPTS
from cai.io.inputs import load_prompts
from cai.stages.redteam import build_slots, seed_text
from cai.workflows.dedup import FilterConfig, PromptFilter
from cai.workflows.redteam import SlotSource

ROOT = Path(__file__).resolve().parent.parent
SEEDS, _ = load_prompts(DEMO_PROMPTS)
N = 8
# 40 characters at least, from 12 tokens of the tiny random model: many are dropped, so it takes rounds
ARGS = ("--seeds", DEMO_PROMPTS, "-n", N, "--chunk-size", 3, "--max-tokens", 12, "--min-chars", 40)


@pytest.fixture(scope="module")
def expanded(tmp_path_factory, tiny_model):
    run = tmp_path_factory.mktemp("redteam") / "run"
    started = time.perf_counter()
    done = cai("redteam", "expand", *ARGS, "--run", run, "--model", tiny_model)
    return run, done, time.perf_counter() - started


def test_the_slot_source_draws_what_build_slots_draws():
    source = SlotSource(DEMO_PROMPTS, "redteam_2", None, tuple(SEEDS), 5, 12, shots=3, seed=4)
    assert source.count() == 7 and source.sha256() == PromptSource(DEMO_PROMPTS, "x").sha256()
    assert [source.parse(line, raw) for line, raw in source.raw()] == build_slots(SEEDS, range(5, 12), 3, 4)


@pytest.mark.slow
def test_rounds_until_n_are_kept_and_every_slot_is_counted(expanded):
    run, done, _ = expanded
    assert done.returncode == 0, done.stderr[-3000:]
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    summary = stages["redteam_expand"]
    rounds = summary["rounds"]
    assert summary["kept"] == N and len(rounds) >= 2  # the first round's drops called for another
    assert rounds[0]["slots"] == [0, N]
    for before, after in zip(rounds, rounds[1:]):
        assert after["slots"][0] == before["slots"][1] and 0 < after["slots"][1] - after["slots"][0] <= N
    for r in rounds:
        stage = stages[f"redteam_{r['round']}"]
        assert stage["slots"] == r["slots"] and stage["rows_in"] == r["slots"][1] - r["slots"][0]
        assert stage["rows_out"] + stage["errors"] == stage["rows_in"] == r["generated"] + r["errors"]
    assert summary["slots"] == rounds[-1]["slots"][1]
    # every generated row is kept, dropped for a reason, or not needed once N were kept
    generated = sum(r["generated"] for r in rounds)
    assert generated == summary["kept"] + sum(summary["dropped"].values())
    assert summary["dropped"]["too_short"] > 0
    assert f"{summary['slots']} slots in {len(rounds)} round(s): {N} kept" in done.stdout


@pytest.mark.slow
def test_prompts_are_new_distinct_and_read_as_prompts(expanded):
    run, _, _ = expanded
    rows = [json.loads(line) for line in (run / "prompts.jsonl").read_text().splitlines()]
    assert len(rows) == N and len({r["id"] for r in rows}) == N
    seed_ids = {s.id for s in SEEDS}
    for row in rows:
        assert set(row) == {"id", "prompt", "seed_ids", "provenance"}
        assert len(row["seed_ids"]) == 4 and set(row["seed_ids"]) <= seed_ids
        assert row["provenance"]["seed"] == 0 and row["provenance"]["sampling"]["shots"] == 4
    # the seeds drawn are those of the row's slot
    slots = {s.id: s for s in build_slots(SEEDS, range(100), 4, 0)}
    assert all(slots[r["id"]].seed_ids == r["seed_ids"] for r in rows)
    # a fresh filter over the seeds and the kept prompts, in order, drops none of them
    check = PromptFilter(FilterConfig(min_chars=40), [seed_text(s) for s in SEEDS])
    assert [check.add(r["prompt"]) for r in rows] == [None] * N
    # `cai generate` and `cai sample` read the file as it is
    source = PromptSource(run / "prompts.jsonl", "generate")
    parsed = [source.parse(line, raw) for line, raw in source.raw()]
    assert [(p.id, p.prompt[0].role, p.prompt[0].content) for p in parsed] == [(r["id"], "user", r["prompt"]) for r in rows]


@pytest.mark.slow
def test_a_rerun_finishes_from_its_chunks_byte_for_byte(expanded, tiny_model):
    run, _, first = expanded
    before = (run / "prompts.jsonl").read_bytes()
    started = time.perf_counter()
    again = cai("redteam", "expand", *ARGS, "--run", run, "--model", tiny_model)
    seconds = time.perf_counter() - started
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run / "prompts.jsonl").read_bytes() == before
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    for r in stages["redteam_expand"]["rounds"]:
        stage = stages[f"redteam_{r['round']}"]
        assert stage["resumed_rows"] == stage["rows_in"]  # no chunk redone: no model call
    assert seconds < first / 2 and "opening" not in again.stderr


@pytest.mark.slow
def test_bad_shots_are_refused_before_any_model_loads(tmp_path):
    done = cai("redteam", "expand", "--seeds", DEMO_PROMPTS, "-n", 5, "--run", tmp_path, "--shots", 40)
    assert done.returncode == 1 and "--shots must be between 1 and the number of seed prompts (32)" in done.stderr
    assert not (tmp_path / "manifest.json").exists()
