"""A real Label Studio for tests: started from `.venv-label-studio` (`make label-studio`) on
127.0.0.1, a free port and a temporary data folder (SQLite), with a known legacy API token; stopped
by killing its whole process group, whatever happened."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LABEL_STUDIO = ROOT / ".venv-label-studio" / "bin" / "label-studio"
TOKEN = "cai-test-token-0123456789"
START_TIMEOUT = 900  # s; the first start migrates a new database: 40 s on a quiet machine, 6 min seen on a loaded one


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def label_studio(data_dir: Path):
    """Yield the server's URL once `/health` answers; the server's log is data_dir/server.log."""
    if not LABEL_STUDIO.exists():
        raise RuntimeError(f"{LABEL_STUDIO} is missing: run `make label-studio` (`make test` builds it)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LATEST_VERSION_CHECK": "false",
           "COLLECT_ANALYTICS": "false"}
    argv = [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port),
            "--data-dir", str(data_dir), "--username", "test@example.com", "--password", "cai-test-password",
            "--user-token", TOKEN, "--enable-legacy-api-token"]
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (data_dir / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Label Studio did not answer /health (exit {process.poll()}):\n{tail}")
            time.sleep(1)
        yield url
    finally:
        _stop(process)
        log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever of the group is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
