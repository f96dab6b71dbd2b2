"""The request cache: several processes write to one run folder's cache at once, and a broken
cache file is only moved aside (it is a cache); answers computed in another dtype are never served."""

import multiprocessing
import sqlite3

import pytest

from cai.engine.cache import RequestCache


def _writer(path, worker: int, rounds: int) -> None:
    cache = RequestCache(path)
    for r in range(rounds):
        cache.put_many({f"{worker}:{r}:{i}": {"text": "x" * 200, "n": i} for i in range(50)})
    cache.close()


def test_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "cache.sqlite"
    RequestCache(path).close()
    workers = [multiprocessing.get_context("spawn").Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 4 * 40 * 50
    assert RequestCache(path).get_many(["3:39:49"]) == {"3:39:49": {"text": "x" * 200, "n": 49}}


def test_a_file_that_is_no_database_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"\x13\x37 not sqlite " * 100)
    cache = RequestCache(path)
    cache.put_many({"k": 1})
    assert cache.get_many(["k"]) == {"k": 1}
    (aside,) = tmp_path.glob("cache.sqlite.broken-*")
    assert aside.read_bytes().startswith(b"\x13\x37")
    (message,) = [r.getMessage() for r in caplog.records if "not a usable cache" in r.getMessage()]
    assert "\n" not in message


@pytest.mark.slow
def test_answers_cached_under_one_dtype_are_not_given_to_another(tmp_path, tiny_model):
    """The in-process engine's cache keys name the model's dtype (and on CPU the thread count):
    another run folder with the same cache asks again when the dtype differs, not when it agrees."""
    import json
    import shutil
    import subprocess
    import sys

    from cai.data import DEMO_PROMPTS

    def generate(run, *extra):
        if run.name != "first":
            run.mkdir()
            shutil.copy(tmp_path / "first" / "cache.sqlite", run / "cache.sqlite")
        done = subprocess.run([sys.executable, "-m", "cai", "--quiet", "generate", "--prompts", str(DEMO_PROMPTS),
                               "--limit", "4", "--model", str(tiny_model), "--run", str(run), "--max-tokens", "4", *extra],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads((run / "manifest.json").read_text())["stages"]["generate"]["engine"]["cached"]

    assert generate(tmp_path / "first") == 0
    assert generate(tmp_path / "same") == 4
    assert generate(tmp_path / "float32", "--engine-arg", "dtype=float32") == 0
