"""`cai demo --limit 2` on the default model (SmolLM2-135M-Instruct), as `make demo` runs it."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_on_the_default_model(tmp_path):
    run = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "cai", "demo", "--limit", "2", "--run", str(run)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "summary" in done.stdout and "tokens/s" in done.stdout
    rows = [json.loads(line) for line in (run / "sft.jsonl").read_text().splitlines()]
    assert all(r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"] and not r["flags"] for r in rows)
    revisions = [json.loads(line) for line in (run / "revisions.jsonl").read_text().splitlines()]
    assert [len(r["steps"]) for r in revisions] == [2, 2]  # the starter pipeline's rounds
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["critique"]["model"] == "smollm2-135m-instruct"
    export = manifest["stages"]["export_sft"]  # flagged final revisions are left out, and counted
    assert export["rows_out"] == len(rows) and export["rows_out"] + export["left_out"] == 2
    assert export["left_out"] == sum(1 for r in revisions if r["flags"])
