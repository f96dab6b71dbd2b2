"""The HTTP backend against real vLLM OpenAI-compatible servers (and, for what vLLM never does, a
small OpenAI-style server of our own), through the real CLI in subprocesses.

Two servers of the tiny model, started once for the module with an API key, carry a whole run:
generate, critique, sample and label, spread over both. Its judgements match the in-process
engine's on the same samples; its cache and manifest name the served model and the tokenizer, not
the URLs; a job killed and rerun, or one whose server dies mid-job, ends as an uninterrupted run;
no key is written anywhere. The server-killing test comes last: it leaves one server dead.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import stage_runs
from cli_run import cai as run_cai
from fake_openai import Behaviour, FakeOpenAI
from test_resume import kill_at
from vllm_server import start_servers

from cai.bench.overhead import http_overhead
from cai.core.run import RunDir
from cai.data import DEMO_PROMPTS
from cai.engine.backends.openai_http import tokenizer_identity
from cai.engine.config import EngineConfig
from cai.engine.engine import SamplingConfig
from cai.stages.generate import GenerateConfig
from cai.stages.label import LabelConfig

ROOT = Path(__file__).resolve().parent.parent
KEY = "secret1-0c4f9a"
WRONG_KEY = "wrong-key-77e1d2"
ROWS = 8


def cai(*args, key: str | None = KEY, key_var: str = "CAI_API_KEY", ok: bool = True, debug: bool = False):
    """One CLI run in a subprocess; nothing it prints may hold a key."""
    env = {k: v for k, v in os.environ.items() if k not in ("CAI_API_KEY", "OPENAI_API_KEY")}
    if key:
        env[key_var] = key
    done = run_cai(*(["--debug"] if debug else []), *args, env=env, timeout=300, cwd=ROOT)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    for secret in (KEY, WRONG_KEY):
        assert secret not in done.stdout + done.stderr
    return done


def assert_no_secret_in(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert KEY.encode() not in data and WRONG_KEY.encode() not in data, f


def server_flags(servers, tiny_model, prefix="") -> list[str]:
    flags = [x for s in servers for x in (f"--{prefix}server", s.url)]
    return flags + [f"--{prefix}tokenizer", str(tiny_model), f"--{prefix}concurrency", "8"]


def generate_args(run: Path, limit: int = ROWS, chunk_size: int = 2) -> list:
    return ["generate", "--model", "tiny", "--prompts", DEMO_PROMPTS, "--limit", limit, "--run", run,
            "--chunk-size", chunk_size, "--max-tokens", "8"]


def critique_args(run: Path) -> list:
    return ["critique", "--rounds", "2", "--run", run, "--chunk-size", "2", "--max-tokens", "8"]


def completions_served(server) -> int:
    return server.log.read_text(errors="replace").count('"POST /v1/completions HTTP/1.1" 200')


def judgements(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "preferences.jsonl").read_text().splitlines()]
    return {(r["id"], j["principle_id"], j["order"]): j["p_first"] for r in rows for j in r["judgements"]}


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())["stages"]


@pytest.fixture(scope="module")
def servers(tiny_model, tmp_path_factory):
    started = start_servers(tiny_model, tmp_path_factory.mktemp("vllm-logs"), 2, api_key=KEY)
    try:
        yield started
    finally:
        for s in started:
            s.stop()


@pytest.fixture(scope="module")
def http_run(servers, tiny_model, tmp_path_factory):
    """generate, critique (2 rounds), sample and label through both servers, as a user runs them."""
    run = tmp_path_factory.mktemp("http") / "run"
    flags = server_flags(servers, tiny_model)
    cai(*generate_args(run), *flags)
    cai(*critique_args(run), *flags)
    cai("sample", "--model", "tiny", "--prompts", DEMO_PROMPTS, "--limit", "4", "--run", run, "--max-tokens", "8",
        *flags, key_var="OPENAI_API_KEY")  # the other variable a key may come from
    cai("label", "--run", run, "--judge-model", "tiny", "--keep-flagged", *server_flags(servers, tiny_model, "judge-"))
    return run


@pytest.mark.slow
def test_a_run_through_two_servers_matches_the_in_process_engine(http_run, servers, tiny, default_constitution, tmp_path):
    stages = manifest(http_run)
    for stage, rows in (("generate", ROWS), ("critique", ROWS), ("sample", 4), ("label", 4)):
        assert stages[stage]["status"] == "done" and stages[stage]["rows_out"] == rows and stages[stage]["errors"] == 0, stage
    assert not (http_run / "errors.jsonl").exists()
    assert all(completions_served(s) > 0 for s in servers)  # requests were spread over both

    # The same prompts in-process: the servers saw the same token ids and sampled the same texts.
    local = RunDir(tmp_path / "local")
    stage_runs.generate(local, DEMO_PROMPTS, tiny, GenerateConfig(tiny.model, sampling=SamplingConfig(max_tokens=8)),
                        limit=ROWS, chunk_size=2)
    texts = [[json.loads(line)["response"] for line in (run / "responses.jsonl").read_text().splitlines()]
             for run in (http_run, local.path)]
    assert texts[0] == texts[1]
    assert manifest(local.path)["generate"]["engine"]["prompt_tokens"] == stages["generate"]["engine"]["prompt_tokens"]

    # The judge on the SAME samples in-process: every judgement within 0.02.
    shutil.copy(http_run / "samples.jsonl", local.file("samples.jsonl"))
    stage_runs.label(local, tiny, default_constitution, LabelConfig(tiny.model, keep_flagged=True))
    served, in_process = judgements(http_run), judgements(local.path)
    assert served.keys() == in_process.keys() and len(served) == 4 * 2  # 4 pairs, both orders
    assert max(abs(served[k] - in_process[k]) for k in served) <= 0.02


@pytest.mark.slow
def test_cache_and_manifest_name_the_served_model_and_tokenizer_not_the_url(http_run, servers, tiny_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(http_run, run)
    record = manifest(run)["generate"]["engine_config"]
    assert record["model"] == "tiny" and record["backend"] == "openai" and record["servers"] == 2
    assert record["tokenizer_fingerprint"] == manifest(run)["generate"]["tokenizer_fingerprint"] == tokenizer_identity(str(tiny_model))
    for f in run.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert all(f"127.0.0.1:{s.port}".encode() not in data for s in servers), f

    # Redo generate (other chunks, --force) through the OTHER server only: every request is a cache hit.
    cai(*generate_args(run, chunk_size=4), *server_flags(servers[1:], tiny_model), "--force")
    engine = manifest(run)["generate"]["engine"]
    assert engine["cached"] == ROWS and engine["requests"] == 0
    assert (run / "responses.jsonl").read_bytes() == (http_run / "responses.jsonl").read_bytes()


@pytest.mark.slow
def test_a_wrong_api_key_ends_in_one_line_and_no_key_is_written(http_run, servers, tiny_model, tmp_path):
    run = tmp_path / "run"
    done = cai(*generate_args(run), *server_flags(servers, tiny_model), key=WRONG_KEY, ok=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused the API key (HTTP 401)" in errors[0] and errors[0] == done.stderr.strip().splitlines()[-1]
    assert not (run / "responses.jsonl").exists()
    for folder in (run, http_run):
        assert_no_secret_in(folder)


@pytest.mark.slow
def test_kill_and_resume_over_http_is_byte_identical(http_run, servers, tiny_model, tmp_path, monkeypatch):
    """Killed and resumed over HTTP, the job ends byte-identical to the uninterrupted HTTP run. This
    holds because the tiny model's sampled texts do not depend on which requests share a server's
    batch; a real model's can (bf16 numerics change with the batch's shape), and then a resumed
    HTTP run is complete and valid but not byte-identical."""
    monkeypatch.setenv("CAI_API_KEY", KEY)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(http_run / "responses.jsonl", run / "responses.jsonl")
    args = [*critique_args(run), *server_flags(servers, tiny_model)]
    assert kill_at(args, "round 2/2: critiques", nth=2, delay=0.05)  # inside the second chunk's last round
    assert 0 < len(list((run / "revisions.jsonl.chunks").glob("*.done.json"))) < 4
    cai(*args)
    assert (run / "revisions.jsonl").read_bytes() == (http_run / "revisions.jsonl").read_bytes()
    assert manifest(run)["critique"]["resumed_rows"] > 0


@pytest.fixture(scope="module")
def fake_run(tiny_model, tmp_path_factory):
    """Samples written through an OpenAI-style server that answers 429 and 503 to its first requests."""
    server, run = FakeOpenAI(Behaviour(fail_first=3)), tmp_path_factory.mktemp("fake") / "run"
    try:
        cai("sample", "--server", server.url, "--model", "fake-model", "--tokenizer", tiny_model, "--prompts", DEMO_PROMPTS,
            "--limit", "3", "--run", run, "--concurrency", "8", key=None)
    finally:
        server.close()
    return run, server.behaviour


@pytest.fixture
def judge_run(fake_run, tmp_path):
    """A copy of the fake run's samples, to label."""
    shutil.copy(fake_run[0] / "samples.jsonl", tmp_path / "samples.jsonl")
    return tmp_path


def fake_label(run: Path, behaviour: Behaviour, tiny_model, *flags):
    server = FakeOpenAI(behaviour)
    try:
        return cai("label", "--run", run, "--judge-server", server.url, "--judge-model", "fake-model",
                   "--judge-tokenizer", tiny_model, "--keep-flagged", *flags, key=None, ok=False)
    finally:
        server.close()


@pytest.mark.slow
def test_429_and_5xx_are_retried_until_the_server_answers(fake_run):
    run, seen = fake_run
    assert seen.failed == 3 and len(seen.seen) == 3 * 2 + 3  # 3 prompts, 2 answers each, 3 refused tries
    assert manifest(run)["sample"]["rows_out"] == 3 and not (run / "errors.jsonl").exists()


@pytest.mark.slow
def test_a_model_without_logprobs_is_refused_before_the_job_starts(judge_run, tiny_model):
    behaviour = Behaviour(logprobs="none")
    done = fake_label(judge_run, behaviour, tiny_model, "--cot")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: model 'fake-model' returns no log-probabilities, which the judge needs: use a model (or server) "
        "that gives logprobs")
    assert len(behaviour.seen) == 2  # the two probes; not one judgement, not one chain of thought
    assert not (judge_run / "preferences.jsonl").exists()


@pytest.mark.slow
def test_an_option_without_a_logprob_fails_that_judgement_alone(judge_run, tiny_model):
    done = fake_label(judge_run, Behaviour(logprobs="lacks_b"), tiny_model, "--max-error-rate", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    errors = [json.loads(line) for line in (judge_run / "errors.jsonl").read_text().splitlines()]
    labelled = (judge_run / "preferences.jsonl").read_text().splitlines()
    assert errors and labelled and len(errors) + len(labelled) == 3
    for e in errors:
        assert e["stage"] == "label" and "the server gave no log-probability for option token 'B'" in e["reason"]
    for row in map(json.loads, labelled):  # A at -0.4 and B at -1.2, by text
        assert all(abs(j["p_first"] - 0.6900) < 1e-3 for j in row["judgements"])


@pytest.mark.slow
def test_bench_http_sends_the_same_requests_both_ways(servers, tiny, tiny_model, monkeypatch):
    monkeypatch.setenv("CAI_API_KEY", KEY)
    served = EngineConfig("tiny", servers=[s.url for s in servers], tokenizer=str(tiny_model), concurrency=8)
    result = http_overhead(DEMO_PROMPTS, tiny, served, SamplingConfig(max_tokens=8), ROWS, 2)
    assert result["prompts"] == ROWS and result["same_texts"] == 1.0 and result["servers"] == 2
    for side in ("in_process", "http"):
        assert result[side]["requests"] == ROWS and result[side]["errors"] == 0 and result[side]["tokens_per_s"] > 0
    assert result["overhead"] == round(result["http"]["seconds"] / result["in_process"]["seconds"] - 1, 4)


@pytest.mark.slow
def test_a_server_killed_mid_job_leaves_the_job_to_the_other(http_run, servers, tiny_model, tmp_path):
    """Last in this module: it leaves the second server dead."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(http_run / "responses.jsonl", run / "responses.jsonl")
    env = {**os.environ, "CAI_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "cai", "--debug", "--quiet", *map(str, critique_args(run)),
                             *server_flags(servers, tiny_model)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    served_before, stderr, killed = completions_served(servers[1]), [], threading.Event()

    def watch():
        for line in proc.stderr:
            stderr.append(line)
            if "round 1/2: revisions" in line and not killed.is_set():
                servers[1].kill()  # SIGKILL to its process group, mid-job
                killed.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert proc.wait(timeout=300) == 0, "".join(stderr)[-3000:]
    watcher.join(timeout=10)
    assert killed.is_set() and completions_served(servers[1]) > served_before
    assert KEY not in "".join(stderr)
    stages = manifest(run)["critique"]
    assert stages["rows_out"] == ROWS and stages["errors"] == 0 and not (run / "errors.jsonl").exists()
    assert (run / "revisions.jsonl").read_bytes() == (http_run / "revisions.jsonl").read_bytes()
