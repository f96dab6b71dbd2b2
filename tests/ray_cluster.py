"""A real Ray cluster on this machine for tests, on 127.0.0.1 only: a head node and one more node.

Ray 2.60's `ray start` replaces `--node-ip-address 127.0.0.1` with the machine's routable address
unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (its single-machine mode), and in that mode it refuses
to start a second node. Ray's own helper for tests, `ray.cluster_utils.Cluster`, starts nodes
without that check, so in single-machine mode it gives a head and a worker node that both listen
on loopback only. It runs in a child process (this file, run as a script) in a session of its own,
so stopping the cluster kills exactly the processes it started, and nothing else on the machine;
the processes that join it (the cai driver) need `env` too.
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
# single-machine mode, and no token: Ray turns token auth on by itself where ~/.ray/auth_token exists
ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    def __init__(self, tmp: Path, nodes: int = 2, cpus_per_node: int = 1):
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {**os.environ, **ENV}
        with open(tmp / "ray.log", "w") as logs:
            # RAY_TMPDIR: Cluster writes the head's address into the default temp folder (/tmp/ray),
            # which need not exist; pointed at this test's folder, that is the nodes' own temp_dir
            self.process = subprocess.Popen(
                [sys.executable, __file__, self.address, str(tmp / "ray"), str(nodes), str(cpus_per_node)],
                stdout=logs, stderr=subprocess.STDOUT, start_new_session=True, env={**self.env, "RAY_TMPDIR": str(tmp)})
        self._wait_for_nodes(nodes)

    def _wait_for_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
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
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                zombie = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
                if title.startswith(name) and not zombie and os.getsid(int(entry.name)) == self.process.pid:
                    found.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
        return found

    def stop(self) -> None:
        """SIGTERM the cluster's process (it removes its nodes), then SIGKILL whatever of its
        session is left."""
        try:
            self.process.terminate()
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 30
        while (left := self.processes("")) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        self.process.wait()


def serve(address: str, temp_dir: str, nodes: int, cpus_per_node: int) -> None:
    """Start the nodes, then hold them until SIGTERM, and remove them."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": cpus_per_node, "gcs_server_port": int(address.rsplit(":", 1)[1]), "temp_dir": temp_dir,
        "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus_per_node)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit())
    try:
        signal.pause()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
