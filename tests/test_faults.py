"""Faults a run meets in real use: a second job on a busy run folder, a job killed with SIGKILL, a
broken request cache, a broken manifest, an input line cut off, a disk that fills up.

Through the real CLI on the tiny model (one uninterrupted run is the reference), each ends in one
clear line and never a traceback, and what was finished is kept: a rerun gives exactly what the
uninterrupted run wrote. In-process tests then fill the disk at every place a job writes, and
hypothesis throws random bytes at the readers of the cache, the manifest and a stage's input.
"""

import errno
import functools
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import stage_runs
from cli_run import cai
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cai.core.chunks import ChunkStore
from cai.core.errors import CaiError
from cai.core.records import Provenance, ResponseRecord, Skipped
from cai.core.run import RunDir, read_jsonl
from cai.core.sources import RecordSource
from cai.data import DEMO_PROMPTS
from cai.engine.cache import RequestCache
from cai.engine.engine import SamplingConfig
from cai.stages.generate import GenerateConfig

ROOT = Path(__file__).resolve().parent.parent
SMALL = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL_KV = ["--engine-arg", f"kv_cache_memory_bytes={2**28}"]  # a busy test machine may not spare the default 4 GiB


def generate(run: Path, model: Path) -> list[str]:
    """The one job most tests run: 8 prompts in 4 chunks of 2, 6 tokens each."""
    return ["generate", "--prompts", str(DEMO_PROMPTS), "--limit", "8", "--model", str(model), "--run", str(run),
            "--max-tokens", "6", "--chunk-size", "2", *SMALL_KV]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cai", "--quiet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def wait_for(condition, what: str, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The job failed with exit status 1 and ended in exactly one `error:` line, no traceback."""
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr[-2000:]
    return errors[0]


def succeeded(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]


def leftovers(run: Path) -> list[Path]:
    """atomic_write's temporaries (`.NAME.XXXX.tmp`) anywhere in the run folder."""
    return sorted(run.rglob("*.tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """An uninterrupted run, and what the same command got when started on its folder meanwhile."""
    run = tmp_path_factory.mktemp("reference") / "run"
    first = start(*generate(run, tiny_model))
    owner = run / ".lock.owner"
    wait_for(lambda: owner.is_file() and f"pid {first.pid}," in owner.read_text() or first.poll() is not None,
             "the first job to hold the run folder")
    rival = cai(*generate(run, tiny_model))
    first_was_running = first.poll() is None
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    return SimpleNamespace(run=run, pid=first.pid, rival=rival, first_was_running=first_was_running)


# -- 3. two jobs on one run folder; a killed job ----------------------------------------------


@pytest.mark.slow
def test_a_second_job_on_a_busy_run_folder_is_refused_in_one_line(reference):
    assert reference.first_was_running  # the rival really met a running job
    line = one_error_line(reference.rival)
    assert f"{reference.run} is in use by another cai job (pid {reference.pid}, started" in line
    assert "use another --run folder" in line
    # the first job finished untouched: every row once, in order, and the folder is free again
    rows = read_jsonl(reference.run / "responses.jsonl", ResponseRecord)
    assert [r.id for r in rows] == [f"demo-{i:02d}" for i in range(1, 9)]
    manifest = RunDir(reference.run).manifest()["stages"]["generate"]
    assert manifest["status"] == "done" and manifest["rows_out"] == 8 and manifest["resumed_rows"] == 0
    assert not (reference.run / ".lock.owner").exists() and not leftovers(reference.run)
    with RunDir(reference.run).locked():
        pass


@pytest.mark.slow
def test_a_killed_job_leaves_no_lock_and_no_temporaries(tmp_path, tiny_model, reference):
    run = tmp_path / "run"
    job = start(*generate(run, tiny_model))
    wait_for(lambda: (run / "responses.jsonl.chunks" / "000000.done.json").is_file() or job.poll() is not None,
             "the first chunk")
    assert job.poll() is None
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert not (run / "responses.jsonl").exists()
    with RunDir(run).locked():  # the lock died with the process
        pass
    # A kill inside atomic_write leaves its temporary file; a kill lands there only by luck, so
    # put down the files such a kill leaves: the manifest's and an unfinished chunk's.
    (run / ".manifest.json.k1ll3d.tmp").write_text('{"stages": {}')
    (run / "responses.jsonl.chunks" / ".000001.jsonl.k1ll3d.tmp").write_text('{"id": "demo-0')
    succeeded(cai(*generate(run, tiny_model)))
    assert not leftovers(run)
    assert (run / "responses.jsonl").read_bytes() == (reference.run / "responses.jsonl").read_bytes()
    assert RunDir(run).manifest()["stages"]["generate"]["resumed_rows"] >= 2


@pytest.mark.slow
def test_a_lock_is_not_kept_by_a_child_that_outlives_its_killed_job(tmp_path):
    """vLLM may fork engine processes while a job holds the folder: the lock must die with the job."""
    script = textwrap.dedent(f"""
        import os, time
        from cai.core.run import RunDir
        with RunDir({str(tmp_path / 'run')!r}).locked():
            child = os.fork()
            if child == 0:
                time.sleep(60)
                os._exit(0)
            print(child, flush=True)
            time.sleep(60)
    """)
    job = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    child = int(job.stdout.readline() or 0)
    try:
        assert child, "the job did not start"
        with pytest.raises(CaiError, match=f"in use by another cai job \\(pid {job.pid},"):
            with RunDir(tmp_path / "run").locked():
                pass
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
        os.kill(child, 0)  # the child lives on
        with RunDir(tmp_path / "run").locked():
            pass
    finally:
        for pid in (job.pid, child or job.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        job.wait()
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass  # not ours: it was the job's child


# -- 4. broken files ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_broken_manifest_is_one_line_saying_what_to_do(tmp_path, tiny_model, reference):
    run = tmp_path / "run"
    shutil.copytree(reference.run, run)
    (run / "manifest.json").write_bytes(random.Random(1).randbytes(300))
    line = one_error_line(cai(*generate(run, tiny_model)))
    assert f"{run / 'manifest.json'} is not a valid manifest" in line and "move it aside" in line and "--force" in line
    # doing as told: moved aside, the stage's files are of unknown settings, so only --force redoes them
    (run / "manifest.json").rename(run / "manifest.json.broken")
    line = one_error_line(cai(*generate(run, tiny_model)))
    assert "settings the manifest does not record" in line and "--force" in line


@pytest.mark.slow
def test_a_broken_cache_and_a_cut_input_line_do_not_stop_the_critique(tmp_path, reference):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("responses.jsonl", "manifest.json"):
        shutil.copy(reference.run / name, run / name)
    lines = (run / "responses.jsonl").read_bytes().splitlines(keepends=True)
    (run / "responses.jsonl").write_bytes(b"".join(lines[:7]) + lines[7][:60])  # cut off inside line 8
    junk = random.Random(2).randbytes(5000)
    (run / "cache.sqlite").write_bytes(junk)
    done = cai("critique", "--run", str(run), "--rounds", "1", "--max-tokens", "4", "--chunk-size", "4",
               "--max-error-rate", "0.2", *SMALL_KV)
    succeeded(done)
    warnings = [line for line in done.stderr.splitlines() if "not a usable cache" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING "), done.stderr
    assert f"{run / 'cache.sqlite'} was not a usable cache (file is not a database): moved it to cache.sqlite.broken-" in warnings[0]
    [aside] = run.glob("cache.sqlite.broken-*")
    assert aside.read_bytes() == junk and aside.name in warnings[0]
    assert sqlite3.connect(run / "cache.sqlite").execute("SELECT count(*) FROM requests").fetchone()[0] > 0
    assert [json.loads(line)["id"] for line in (run / "revisions.jsonl").read_text().splitlines()] == \
        [f"demo-{i:02d}" for i in range(1, 8)]
    [error] = read_jsonl(run / "errors.jsonl", Skipped)
    assert (error.stage, error.line, error.id) == ("critique", 8, None) and error.reason.startswith("invalid JSON")
    assert "1 rows failed (line 8)" in done.stdout


# -- 4. a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 120 KB tmpfs, unmounted whatever happens. A real full disk is the point of the test, so it
    fails, not skips, where it cannot mount one (CI and the test machines run as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"this test mounts a 120 KB tmpfs, which needs root: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_disk_stops_the_job_in_one_line_and_the_rerun_finishes_it(small_disk, tiny_model, reference):
    """The run folder on the small disk, the model elsewhere."""
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 40_000)  # leaves room for the first chunk, not for all four
    run = small_disk / "run"
    line = one_error_line(cai(*generate(run, tiny_model)))
    assert line.startswith("error: no space left: 'generate' could not write "), line
    assert f"{run}" in line and "nothing finished is lost" in line and "run the same command again to resume" in line
    assert not leftovers(run) and not (run / "responses.jsonl").exists()
    finished = len(list((run / "responses.jsonl.chunks").glob("*.done.json")))
    assert 1 <= finished < 4
    # more room: remove the filler and make the disk larger; the rerun does only what was left
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,size=2m", str(small_disk)], check=True)
    succeeded(cai(*generate(run, tiny_model)))
    assert (run / "responses.jsonl").read_bytes() == (reference.run / "responses.jsonl").read_bytes()
    assert RunDir(run).manifest()["stages"]["generate"]["resumed_rows"] == 2 * finished
    assert not leftovers(run)


PROMPT_LINES = [json.dumps({"id": f"p{i}", "prompt": f"Say something about the number {i}."}) for i in range(4)]


def full_disk_at(monkeypatch, name: str, nth: int = 1) -> None:
    """Make the nth atomic write of `name` (a run folder file or chunk file) fail as a full disk fails
    (ENOSPC when its data is flushed), and leave every other write alone."""
    real_fsync, seen = os.fsync, []

    def fsync(fd):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}."):
            seen.append(fd)
            if len(seen) == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def full_cache(monkeypatch) -> None:
    def put_many(self, items):
        raise sqlite3.OperationalError("database or disk is full")  # SQLite's own words for SQLITE_FULL

    monkeypatch.setattr(RequestCache, "_put_many", put_many)


WRITES = {  # where a job writes, and what the one line then names
    "the run folder's owner note": (lambda mp: full_disk_at(mp, ".lock.owner"), ".lock.owner"),
    "the manifest, at the start": (lambda mp: full_disk_at(mp, "manifest.json", 1), "manifest.json"),
    "a chunk's rows": (lambda mp: full_disk_at(mp, "000001.jsonl"), "responses.jsonl.chunks/000001.jsonl"),
    "a chunk's marker": (lambda mp: full_disk_at(mp, "000001.done.json"), "responses.jsonl.chunks/000001.done.json"),
    "the request cache": (full_cache, "the request cache"),
    "the output": (lambda mp: full_disk_at(mp, "responses.jsonl"), "responses.jsonl"),
    "errors.jsonl": (lambda mp: full_disk_at(mp, "errors.jsonl"), "errors.jsonl"),
    "the manifest, at the end": (lambda mp: full_disk_at(mp, "manifest.json", 2), "manifest.json"),
}


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("\n".join(PROMPT_LINES[:2] + ['{"id": "bad", "prompt": 7}'] + PROMPT_LINES[2:]) + "\n")
    return path


CONFIG = GenerateConfig("tiny", sampling=SamplingConfig(max_tokens=4))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, engine, tiny, prompts) -> RunDir:
    """The in-process job run without a fault."""
    run = RunDir(tmp_path_factory.mktemp("clean") / "run")
    stage_runs.generate(run, prompts, tiny, CONFIG, chunk_size=2)
    return run


@pytest.mark.parametrize("where", WRITES)
def test_a_full_disk_anywhere_is_one_line_and_the_rerun_resumes(where, tmp_path, tiny, prompts, clean, monkeypatch):
    run = RunDir(tmp_path / "run")
    fill, named = WRITES[where]
    with monkeypatch.context() as mp:
        fill(mp)
        with pytest.raises(CaiError) as failed:
            stage_runs.generate(run, prompts, tiny, CONFIG, chunk_size=2)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("no space left: 'generate' could not write "), message
    target = named if named.startswith("the ") else str(run.path / named)
    assert target in message and "nothing finished is lost" in message and "run the same command again to resume" in message
    assert not leftovers(run.path)
    report = stage_runs.generate(run, prompts, tiny, CONFIG, chunk_size=2)
    assert run.file("responses.jsonl").read_bytes() == clean.file("responses.jsonl").read_bytes()
    assert run.file("errors.jsonl").read_bytes() == clean.file("errors.jsonl").read_bytes()
    assert report.rows_in == 5 and report.rows_out == 4 and len(report.skipped) == 1
    assert RunDir(run.path).manifest()["stages"]["generate"]["status"] == "done"


def test_stage_files_the_manifest_does_not_record_are_redone_with_force(tmp_path, tiny, prompts, clean):
    run = RunDir(tmp_path / "run")
    shutil.copytree(clean.path, run.path)
    expected = run.file("responses.jsonl").read_bytes()
    store = ChunkStore(run.file("responses.jsonl"))
    store.rows_path(0).write_text(store.rows_path(1).read_text())  # files of unknown making ...
    run.manifest_path.unlink()  # ... that no manifest accounts for
    with pytest.raises(CaiError, match="settings the manifest does not record.*--force"):
        stage_runs.generate(run, prompts, tiny, CONFIG, chunk_size=2)
    report = stage_runs.generate(run, prompts, tiny, CONFIG, chunk_size=2, force=True)
    assert report.rows_out == 4 and run.file("responses.jsonl").read_bytes() == expected


# -- hypothesis: random bytes where the cache, the manifest and a stage's input are read ---------


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@functools.cache
def real_cache_bytes() -> bytes:
    """A real cache file of a few pages, to damage."""
    with tempfile.TemporaryDirectory() as folder:
        cache = RequestCache(Path(folder) / "cache.sqlite")
        cache.put_many({f"key{i}": {"text": "x" * 200, "i": i} for i in range(200)})
        cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cache.close()
        return (Path(folder) / "cache.sqlite").read_bytes()


@SMALL
@given(junk=st.binary(max_size=3000), how=st.sampled_from(["random", "header", "truncated", "overwritten"]),
       where=st.floats(0, 1))
def test_a_damaged_cache_is_set_aside_with_one_warning(tmp_path_factory, junk, how, where):
    real = real_cache_bytes()
    at = int(where * (len(real) - 1))
    data = {"random": junk, "header": b"SQLite format 3\x00" + junk, "truncated": real[:at],
            "overwritten": real[:at] + junk + real[at + len(junk):]}[how]
    path = tmp_path_factory.mktemp("damaged") / "cache.sqlite"
    path.write_bytes(data)
    handler = Warnings()
    logging.getLogger("cai").addHandler(handler)
    try:
        cache = RequestCache(path)
        found = cache.get_many([f"key{i}" for i in range(200)])
        cache.put_many({"new": [1, 2]})
        assert cache.get_many(["new"]) == {"new": [1, 2]}
        cache.close()
    finally:
        logging.getLogger("cai").removeHandler(handler)
    asides = list(path.parent.glob("cache.sqlite.broken-*"))
    assert len(asides) == len(handler.messages) <= 1
    if asides:
        assert asides[0].read_bytes() == data and "\n" not in handler.messages[0]
        assert f"moved it to {asides[0].name}" in handler.messages[0]
    elif data == real:  # undamaged: every answer is found as it was stored
        assert found == {f"key{i}": {"text": "x" * 200, "i": i} for i in range(200)}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@SMALL
@given(content=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.dictionaries(st.text(max_size=8), json_values, max_size=3).map(lambda s: json.dumps({"stages": s}).encode()))
def test_a_broken_manifest_is_read_or_refused_in_one_line(tmp_path_factory, content):
    run = RunDir(tmp_path_factory.mktemp("manifest"))
    run.manifest_path.write_bytes(content)
    try:
        manifest = run.manifest()
    except CaiError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{run.manifest_path} is not a valid manifest")
        return
    assert all(isinstance(entry, dict) for entry in manifest["stages"].values())
    run.record_stage("generate", {"status": "running"})  # a valid one can be written to
    assert run.manifest()["stages"]["generate"]["status"] == "running"


def response_line(i: int) -> bytes:
    record = ResponseRecord(id=f"r{i}", prompt=[{"role": "user", "content": f"question {i}"}], response="an answer",
                            provenance=Provenance(model="m", sampling={}, style="chat"))
    return record.model_dump_json().encode() + b"\n"


@SMALL
@given(bad=st.integers(1, 4), cut=st.floats(0, 1), junk=st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
       last=st.booleans())
def test_a_cut_or_garbled_input_line_is_a_data_error_with_its_line_number(tmp_path_factory, bad, cut, junk, last):
    lines = [response_line(i) for i in range(1, 5)]
    line = lines[bad - 1]
    at = int(cut * (len(line) - 1))
    lines[bad - 1] = line[:at] if last and bad == 4 else line[:at] + junk + line[at:]  # cut off at the end, or garbled
    path = tmp_path_factory.mktemp("input") / "responses.jsonl"
    path.write_bytes(b"".join(lines))
    source = RecordSource(path, "critique", record_type=ResponseRecord)
    parsed = {number: source.parse(number, raw) for number, raw in source.raw()}
    assert source.count() == len(parsed) and len(source.sha256()) == 64
    for number, row in parsed.items():
        if isinstance(row, Skipped):
            assert number == bad and row.line == bad and row.stage == "critique" and row.reason
        else:
            assert isinstance(row, ResponseRecord)
    assert all(isinstance(parsed[n], ResponseRecord) and parsed[n].id == f"r{n}" for n in parsed if n != bad)
