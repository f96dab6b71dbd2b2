"""A real Ray cluster on this machine for tests: a head and one more node, 127.0.0.1 only.

Each node is a `ray start --block` process in a session of its own, so stopping the cluster kills
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
    def __init__(self, tmp: Path, cpus_per_node: int = 1):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus_per_node), "--block", "--disable-usage-stats"]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        logs = open(tmp / "ray.log", "w")
        self.nodes = [subprocess.Popen([RAY, "start", "--head", "--port", str(self.port), "--include-dashboard", "false",
                                        "--temp-dir", str(tmp / "ray"), *common],
                                       stdout=logs, stderr=subprocess.STDOUT, start_new_session=True, env=env)]
        self._wait_for_nodes(1)
        self.nodes.append(subprocess.Popen([RAY, "start", "--address", self.address, *common],
                                           stdout=logs, stderr=subprocess.STDOUT, start_new_session=True, env=env))
        self._wait_for_nodes(2)

    def _wait_for_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run([RAY, "status", "--address", self.address], capture_output=True, text=True)
            if done.returncode == 0 and done.stdout.count("node_") >= n:
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout} s")

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
