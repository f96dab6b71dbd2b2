"""Kill a job with SIGKILL at every kind of point — between chunks, at the boundary between a
round's critique and revision steps, and inside a step — then run the same command again: the
result must be exactly what an uninterrupted run writes, byte for byte, one row per input id."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cai.data import DEMO_PROMPTS

CHUNKS = 8  # --limit 8 at --chunk-size 1


def command(stage, run, model):
    common = ["--run", str(run), "--chunk-size", "1", "--max-tokens", "6"]
    if stage == "generate":
        return ["generate", "--prompts", str(DEMO_PROMPTS), "--limit", "8", "--model", str(model), *common]
    return ["critique", "--rounds", "2", *common]


def finish(args):
    done = subprocess.run([sys.executable, "-m", "cai", "--quiet", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def done_chunks(run: Path, name: str) -> int:
    return len(list((run / f"{name}.chunks").glob("*.done.json")))


def kill_at(args, step: str, nth: int = 1, delay: float = 0.0, timeout: float = 300) -> bool:
    """Start the command; SIGKILL it `delay` s after the `nth` time it starts `step` (a progress
    step such as "round 1/2: revisions"). Returns whether it was killed before it ended.

    Each step is logged once per chunk, so the `nth` one is never the last chunk's as long as
    `nth` is below the chunks left: the kill then cannot lose a race with the job's end."""
    proc = subprocess.Popen([sys.executable, "-m", "cai", "--debug", "--quiet", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, hit = threading.Event(), []

    def watch():
        count = 0
        for line in proc.stderr:
            count += step in line
            if count >= nth and not hit:
                hit.append(True)
                seen.set()
        proc.stderr.close()
        seen.set()

    threading.Thread(target=watch, daemon=True).start()
    if seen.wait(timeout) and hit and proc.poll() is None:
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    proc.wait()
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    run = tmp_path_factory.mktemp("reference") / "run"
    for stage in ("generate", "critique"):
        finish(command(stage, run, tiny_model))
    return run


def chunks_left(run: Path, name: str) -> int:
    left = CHUNKS - done_chunks(run, name)
    assert left >= 2, f"{name}: only {left} chunk(s) left to kill in; the kills before came too late"
    return left


@pytest.mark.slow
def test_kill_anywhere_and_resume_is_byte_identical(tmp_path, tiny_model, reference):
    run = tmp_path / "run"
    generate, critique = command("generate", run, tiny_model), command("critique", run, tiny_model)
    # generate: killed inside the second chunk's call, then as a later chunk starts
    assert kill_at(generate, "answers", nth=2, delay=0.05)
    assert kill_at(generate, "answers", nth=min(2, chunks_left(run, "responses.jsonl") - 1))
    finish(generate)
    # critique: at the boundary between a round's two steps (critiques done, revisions not begun),
    # inside a revision step, at the start of round 2, and inside a later chunk's last step
    assert kill_at(critique, "round 1/2: revisions")
    assert kill_at(critique, "round 1/2: revisions", nth=2, delay=0.05)
    assert kill_at(critique, "round 2/2: critiques", nth=1)
    assert kill_at(critique, "round 2/2: revisions", nth=min(2, chunks_left(run, "revisions.jsonl") - 1), delay=0.02)
    assert done_chunks(run, "revisions.jsonl") < CHUNKS
    finish(critique)

    for name in ("responses.jsonl", "revisions.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
        ids = [json.loads(line)["id"] for line in (run / name).read_text().splitlines()]
        assert len(ids) == len(set(ids)) == CHUNKS
    assert not list(run.rglob("*.tmp"))
    manifest = json.loads((run / "manifest.json").read_text())["stages"]
    assert manifest["critique"]["status"] == "done" and manifest["critique"]["rows_out"] == 8
