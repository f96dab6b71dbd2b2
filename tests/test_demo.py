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
    assert len(rows) == 2
    assert all(r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"] for r in rows)
    revisions = [json.loads(line) for line in (run / "revisions.jsonl").read_text().splitlines()]
    assert [len(r["steps"]) for r in revisions] == [4, 4]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["critique"]["model"] == "smollm2-135m-instruct"
