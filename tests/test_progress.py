"""Progress on long work: where stderr is a log file or a pipe (no live bar can show), every finished
chunk prints one line with rows done, the rate, the elapsed time and the ETA; a judge's stage, which
writes no tokens, shows the prompt tokens it reads."""

import io

from rich.console import Console

from cai.core import progress


def lines_of(monkeypatch, chunks: list[dict], skipped: int = 0, total: int = 6) -> list[str]:
    log = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=log, force_terminal=False, width=200))
    tracker = progress.Tracker("label", total)
    tracker.skipped(skipped)
    for marker in chunks:
        tracker.chunk_done(marker)
    tracker.close()
    return log.getvalue().splitlines()


def test_each_finished_chunk_prints_a_line_when_stderr_is_no_terminal(monkeypatch):
    chunk = {"rows_in": 2, "engine": {"completion_tokens": 10, "prompt_tokens": 50}}
    lines = lines_of(monkeypatch, [chunk, chunk], skipped=2)
    assert [line.split(" · ")[0] for line in lines] == ["label: 4/6 rows", "label: 6/6 rows"]
    assert all("tok/s" in line and "prompt" not in line and "elapsed" in line for line in lines)
    assert lines[-1].endswith("ETA 0:00:00")


def test_a_stage_that_writes_no_tokens_shows_the_prompt_tokens_it_reads(monkeypatch):
    [line] = lines_of(monkeypatch, [{"rows_in": 6, "engine": {"completion_tokens": 0, "prompt_tokens": 900}}])
    assert " prompt tok/s · " in line


def test_quiet_prints_nothing(monkeypatch):
    monkeypatch.setitem(progress.settings, "enabled", False)
    assert lines_of(monkeypatch, [{"rows_in": 6, "engine": {}}]) == []
