"""Kill a job with SIGKILL at several points, run the same command again: the result must be
exactly what an uninterrupted run writes, byte for byte, one row per input id."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cai.data import DEMO_PROMPTS

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = DEMO_PROMPTS
OUTPUTS = ("responses.jsonl", "revisions.jsonl", "errors.jsonl")


def command(stage, run, model):
    common = ["--run", str(run), "--chunk-size", "2", "--max-tokens", "6"]
    if stage == "generate":
        return ["generate", "--prompts", str(PROMPTS), "--limit", "8", "--model", str(model), *common]
    return ["critique", "--rounds", "2", *common]


def cai(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "cai", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(args):
    proc = cai(args)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]


def cached_requests(run: Path) -> int:
    try:
        with sqlite3.connect(run / "cache.sqlite") as db:
            return db.execute("SELECT count(*) FROM requests").fetchone()[0]
    except sqlite3.Error:
        return 0


def partial_rows(run: Path, name: str) -> int:
    path = run / f"{name}.partial"
    return path.read_text().count("\n") if path.exists() else 0


def kill_when(args, ready, timeout=300):
    """Start the command, SIGKILL it as soon as `ready()` holds; returns whether it was killed."""
    proc = cai(args)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.communicate()
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    run = tmp_path_factory.mktemp("reference") / "run"
    for stage in ("generate", "critique"):
        finish(command(stage, run, tiny_model))
    return run


def test_kill_and_resume_is_byte_identical(tmp_path, tiny_model, reference):
    run = tmp_path / "run"
    # generate: killed after the first chunk's rows are on disk, then in the middle of a chunk
    assert kill_when(command("generate", run, tiny_model), lambda: partial_rows(run, "responses.jsonl") >= 2)
    seen = cached_requests(run)
    assert kill_when(command("generate", run, tiny_model), lambda: cached_requests(run) > seen)
    finish(command("generate", run, tiny_model))
    # critique: killed mid-round (a request batch stored, its chunk unfinished), then after a chunk
    assert kill_when(command("critique", run, tiny_model), lambda: cached_requests(run) > 8)
    assert kill_when(command("critique", run, tiny_model), lambda: partial_rows(run, "revisions.jsonl") >= 2)
    finish(command("critique", run, tiny_model))

    for name in ("responses.jsonl", "revisions.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
        ids = [json.loads(line)["id"] for line in (run / name).read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 8
        assert not (run / f"{name}.partial").exists()
    manifest = json.loads((run / "manifest.json").read_text())["stages"]
    assert manifest["critique"]["status"] == "done" and manifest["critique"]["rows_out"] == 8
