"""A real vLLM OpenAI-compatible server on 127.0.0.1 for tests and benchmarks, stopped by its PID.

Each server runs in its own process group (the API server and its engine-core child), on a free
port, with the CPU settings the in-process engine uses (eager, no chunked prefill, single-process
executor, a fixed KV cache and the model's default dtype), so that it computes what the in-process
engine computes. `stop` ends the group with SIGTERM, then SIGKILL; `kill` is the SIGKILL a crashed
machine would give.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MAX_MODEL_LEN = 8192  # the tiny model's own context, as the in-process engine uses it
KV_CACHE_BYTES = 1 << 30  # as the tests' in-process engine (kv_cache_gib=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmServer:
    def __init__(self, model: Path | str, log: Path, name: str = "tiny", api_key: str | None = None,
                 max_model_len: int = MAX_MODEL_LEN):
        self.model, self.name, self.log = str(model), name, Path(log)
        self.port = free_port()
        args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
                "--served-model-name", name, "--host", "127.0.0.1", "--port", str(self.port),
                "--enforce-eager", "--max-model-len", str(max_model_len), "--no-enable-chunked-prefill",
                "--max-num-batched-tokens", str(max(max_model_len, 8192)),
                "--distributed-executor-backend", "uni", "--kv-cache-memory-bytes", str(KV_CACHE_BYTES)]
        if api_key:
            args += ["--api-key", api_key]
        env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
               "PYTHONUNBUFFERED": "1"}  # its access log is read while it runs
        for secret in ("CAI_API_KEY", "OPENAI_API_KEY", "VLLM_API_KEY"):
            env.pop(secret, None)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, cwd=self.log.parent)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout: float = 240) -> VllmServer:
        """Until GET /health answers 200; a server that exits or never answers raises with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"vLLM server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"vLLM server not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group's id is the server's PID (start_new_session)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would."""
        self._signal_group(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)  # the engine-core child too, if it outlived its parent
        self.proc.wait()


def start_servers(model: Path | str, logs: Path, count: int = 1, **kwargs) -> list[VllmServer]:
    """`count` servers started side by side, each ready; all stopped if any fails to start."""
    servers = [VllmServer(model, logs / f"vllm-{n}.log", **kwargs) for n in range(count)]
    try:
        return [s.wait_ready() for s in servers]
    except BaseException:
        for s in servers:
            s.stop()
        raise
