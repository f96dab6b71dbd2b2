"""The Ray executor on a real Ray cluster on this machine (a head and one more node, each of one
CPU, on 127.0.0.1 only): `cai critique --executor ray --replicas 2` (an actor on each node) writes the same bytes as the local executor, also when an actor is
SIGKILLed in the middle of a chunk (Ray restarts it and the chunk is done again from its start).
On CPU an actor computes with the driver's thread count, not the one CPU Ray gives it: the tiny
model's tokens do not change with the count, but the request cache's keys name it."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from cli_run import cai
from ray_cluster import RayCluster

from cai.data import DEMO_PROMPTS

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = RayCluster(tmp_path_factory.mktemp("ray"))
    listening = cluster.listening()
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening  # loopback only
    yield cluster
    cluster.stop()
    assert cluster.processes("") == []


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, tiny_model):
    """generate, then critique on the local executor: the reference."""
    run = tmp_path_factory.mktemp("local") / "run"
    done = cai("generate", "--prompts", str(DEMO_PROMPTS), "--limit", "8", "--model", str(tiny_model),
               "--run", str(run), "--max-tokens", "6", "--chunk-size", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    done = cai("critique", "--run", str(run), "--rounds", "2", "--max-tokens", "8", "--chunk-size", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    return run


def ray_critique(run, cluster, tiny_model):
    return ["critique", "--run", str(run), "--rounds", "2", "--max-tokens", "8", "--chunk-size", "2",
            "--model", str(tiny_model), "--executor", "ray", "--ray-address", cluster.address, "--replicas", "2"]


def cache_keys(run) -> set[str]:
    with sqlite3.connect(run / "cache.sqlite") as db:
        return {key for (key,) in db.execute("SELECT key FROM requests")}


@pytest.mark.slow
def test_ray_executor_writes_what_the_local_one_does_on_as_many_threads(tmp_path, cluster, local_run, tiny_model):
    assert os.cpu_count() > 1, "on one core every thread count is 1: nothing to tell apart"
    run = tmp_path / "run"
    run.mkdir()
    (run / "responses.jsonl").write_bytes((local_run / "responses.jsonl").read_bytes())
    done = cai(*ray_critique(run, cluster, tiny_model), env=cluster.env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run / "revisions.jsonl").read_bytes() == (local_run / "revisions.jsonl").read_bytes()
    # each actor has 1 CPU, yet asked what the local run (on all cores) asked, thread count included
    assert cache_keys(run) and cache_keys(run) <= cache_keys(local_run)


@pytest.mark.slow
def test_an_actor_killed_mid_chunk_is_restarted_and_the_output_is_unchanged(tmp_path, cluster, local_run, tiny_model):
    run = tmp_path / "run"
    run.mkdir()
    (run / "responses.jsonl").write_bytes((local_run / "responses.jsonl").read_bytes())
    job = subprocess.Popen([sys.executable, "-m", "cai", "--quiet", *ray_critique(run, cluster, tiny_model)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    chunks = run / "revisions.jsonl.chunks"
    deadline = time.monotonic() + 300
    while job.poll() is None and time.monotonic() < deadline and not list(chunks.glob("*.done.json")):
        time.sleep(0.05)  # the first chunk is done: both actors have their engines and are working
    actors = cluster.processes("ray::Replica")
    assert job.poll() is None and actors, "the job ended before an actor could be killed"
    os.kill(actors[0], signal.SIGKILL)
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr[-2000:]
    assert (run / "revisions.jsonl").read_bytes() == (local_run / "revisions.jsonl").read_bytes()
