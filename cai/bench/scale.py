"""Does a job scale? Peak memory against input size, and what a resumed job costs.

Both run `cai generate` as users run it, in a fresh process each time, on synthetic prompts:
- memory: the peak RSS of the whole process (vLLM runs in it) for each input size; inputs
  stream and finished chunks are written out, so the peak should not grow with the input;
- resume: a full run; a run killed with SIGKILL once 90% of its chunks are done, then rerun; and a
  one-prompt run (start-up: the process, the model, one request). The rerun should cost no more than
  start-up plus the remaining 10% of the work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cai.core.children import cai_env
from cai.core.errors import CaiError


def synthetic_prompts(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"Tell me something about number {i} and why it matters."}) + "\n")
    return path


def _command(prompts: Path, run: Path, model: str, max_tokens: int, chunk_size: int) -> list[str]:
    return [sys.executable, "-m", "cai", "--quiet", "generate", "--prompts", str(prompts), "--run", str(run),
            "--model", model, "--max-tokens", str(max_tokens), "--chunk-size", str(chunk_size)]


def _measured(args: list[str], kill_when=None) -> tuple[float, float, bool]:
    """Seconds, peak RSS in MiB, and whether `kill_when()` came true and the process was killed."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cai_env())
    killed = False
    while kill_when and proc.poll() is None:
        if kill_when():
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and not killed:
        raise CaiError(f"{' '.join(args[2:])} failed:\n{proc.stderr.read().decode()[-1500:].strip()}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, killed


def memory(model: str, sizes: list[int], max_tokens: int = 1, chunk_size: int = 512) -> dict:
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            prompts = synthetic_prompts(Path(tmp) / f"p{n}.jsonl", n)
            seconds, rss, _ = _measured(_command(prompts, Path(tmp) / f"run{n}", model, max_tokens, chunk_size))
            result[str(n)] = {"seconds": round(seconds, 1), "peak_rss_mib": round(rss)}
    first, last = (result[str(n)]["peak_rss_mib"] for n in (sizes[0], sizes[-1]))
    return {"sizes": result, "rss_ratio": round(last / first, 3)}


def resume(model: str, n: int, max_tokens: int = 1, chunk_size: int = 512, kill_at: float = 0.9) -> dict:
    chunks = -(-n // chunk_size)
    with tempfile.TemporaryDirectory() as tmp:
        prompts = synthetic_prompts(Path(tmp) / "p.jsonl", n)
        one = synthetic_prompts(Path(tmp) / "one.jsonl", 1)
        startup, _, _ = _measured(_command(one, Path(tmp) / "one", model, max_tokens, chunk_size))
        full, _, _ = _measured(_command(prompts, Path(tmp) / "full", model, max_tokens, chunk_size))
        run = Path(tmp) / "killed"
        folder = run / "responses.jsonl.chunks"

        def done() -> int:
            return len(list(folder.glob("*.done.json"))) if folder.is_dir() else 0

        _, _, killed = _measured(_command(prompts, run, model, max_tokens, chunk_size), lambda: done() >= kill_at * chunks)
        finished_before = done()
        rerun, _, _ = _measured(_command(prompts, run, model, max_tokens, chunk_size))
        same = (run / "responses.jsonl").read_bytes() == (Path(tmp) / "full" / "responses.jsonl").read_bytes()
    work = full - startup
    return {"prompts": n, "chunks": chunks, "startup_seconds": round(startup, 1), "full_seconds": round(full, 1),
            "killed": killed, "chunks_done_at_kill": finished_before, "rerun_seconds": round(rerun, 1),
            "bound_seconds": round(startup + (1 - finished_before / chunks) * work, 1), "identical": same}


def _rows_per_second(run: Path) -> float:
    """Steady-state throughput: rows over the time spent computing chunks (start-up excluded)."""
    counters = json.loads((run / "manifest.json").read_text())["stages"]["generate"]["counters"]
    rows = sum(1 for _ in (run / "responses.jsonl").open())
    return rows / counters["chunk_seconds"]


def throughput(model: str, n: int, executors: dict[str, list[str]], max_tokens: int = 16, chunk_size: int = 512) -> dict:
    """The same requests (same prompts, seeds and chunks) through each executor/backend, given as
    extra `cai generate` options; rows/s while computing chunks, and the whole run's seconds."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        prompts = synthetic_prompts(Path(tmp) / "p.jsonl", n)
        outputs = {}
        for name, options in executors.items():
            run = Path(tmp) / name
            seconds, _, _ = _measured(_command(prompts, run, model, max_tokens, chunk_size) + options)
            result[name] = {"rows_per_second": round(_rows_per_second(run), 1), "seconds": round(seconds, 1)}
            outputs[name] = (run / "responses.jsonl").read_bytes()
        base = next(iter(result))
        for name in result:
            result[name]["vs_" + base] = round(result[name]["rows_per_second"] / result[base]["rows_per_second"] - 1, 4)
            # bytes: rows through a server name the served model, so there only the texts can match
            result[name]["identical_output"] = outputs[name] == outputs[base]
            result[name]["same_texts"] = _same_texts(outputs[name], outputs[base])
    return result


def _same_texts(a: bytes, b: bytes) -> float:
    """The share of rows whose response is the same in both outputs."""
    texts = [[json.loads(line)["response"] for line in out.splitlines()] for out in (a, b)]
    return round(sum(x == y for x, y in zip(*texts)) / max(len(texts[1]), 1), 4)
