"""A real Ray cluster on this machine for tests, on 127.0.0.1 only: one head node.

Ray 2.60 replaces `--node-ip-address 127.0.0.1` with the machine's routable address, unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (its single-machine mode, the default on macOS and Windows),
which keeps every Ray process on loopback but refuses a second node. So the cluster is one node
with a CPU per replica; the processes that join it (the cai driver) need `env` too.

The node is a `ray start --block` process in a session of its own, so stopping the cluster kills
exactly the processes it started (by their session), and nothing else on the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    def __init__(self, tmp: Path, cpus: int = 2):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # without a token: Ray turns token authentication on by itself where ~/.ray/auth_token exists
        self.env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                    "RAY_USAGE_STATS_ENABLED": "0"}
        with open(tmp / "ray.log", "w") as logs:
            self.nodes = [subprocess.Popen(
                [RAY, "start", "--head", "--port", str(self.port), "--node-ip-address", "127.0.0.1",
                 "--num-cpus", str(cpus), "--include-dashboard", "false", "--temp-dir", str(tmp / "ray"),
                 "--block", "--disable-usage-stats"],
                stdout=logs, stderr=subprocess.STDOUT, start_new_session=True, env=self.env)]
        self._wait_for_nodes(1)

    def _wait_for_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run([RAY, "status", "--address", self.address], capture_output=True, text=True,
                                  env=self.env)
            if done.returncode == 0 and done.stdout.count("node_") >= n:
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout} s")

    def listening(self) -> set[str]:
        """The addresses this cluster's processes listen on."""
        import psutil

        found = set()
        for pid in self.processes(""):
            try:
                found |= {c.laddr.ip for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
            except psutil.Error:
                continue
        return found

    def processes(self, name: str) -> list[int]:
        """PIDs of this cluster's processes whose title starts with `name` (e.g. 'ray::Replica')."""
        sessions = {node.pid for node in self.nodes}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                zombie = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
                if title.startswith(name) and not zombie and os.getsid(int(entry.name)) in sessions:
                    found.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
        return found

    def stop(self) -> None:
        """SIGTERM each node's `ray start`, then SIGKILL whatever of its session is left."""
        for node in reversed(self.nodes):
            try:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        deadline = time.monotonic() + 30
        while (left := self.processes("")) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        for node in self.nodes:
            node.wait()
