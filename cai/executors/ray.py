"""The Ray executor: the same chunks, computed by actors on a Ray cluster.

Each replica is an actor that opens its engine once (an in-process vLLM on its GPUs, or an HTTP
client to the servers) and runs the stage's own batch function on whole chunks, through the same
`compute_chunk` as the local executor, writing the chunk files into the run folder (which must be
on storage every node sees). A chunk starts from a cold prefix cache and is committed whole, and
on CPU an actor computes with as many threads as the driver would (`EngineConfig.for_replicas`),
so the output is the same, byte for byte, as the local executor's. An actor that dies is restarted
and its chunk is done again from the start; the driver keeps only a few chunks in flight per
replica, so memory does not grow with the input.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cai
from cai.core.chunks import ChunkStore
from cai.core.errors import CaiError

log = logging.getLogger("cai")

IN_FLIGHT = 2  # chunks queued per replica: one computing, one ready
WORKER_ENV = {"VLLM_LOGGING_LEVEL": "ERROR", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
              "VLLM_CPU_OMP_THREADS_BIND": "nobind", "TOKENIZERS_PARALLELISM": "false"}
FORWARDED = ("CAI_API_KEY", "OPENAI_API_KEY", "OMP_WAIT_POLICY")


class Replica:
    """One engine on one actor; `run` does one chunk."""

    def __init__(self, engine_config, cache: str, batch, output: str):
        from cai.executors.local import shared_engine

        self.engine = shared_engine(engine_config, Path(cache))
        self.batch, self.store = batch, ChunkStore(Path(output))

    def run(self, work) -> dict:
        from cai.core.stage import compute_chunk

        return compute_chunk(self.batch, self.engine, work, self.store)


class RayExecutor:
    def __init__(self, config):
        self.config = config

    def _connect(self):
        if not self.config.ray_address:
            # A Ray instance of this job's own: Ray's single-machine mode keeps it on 127.0.0.1
            # (read when Ray is imported); else Ray listens on the machine's routable address.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise CaiError("--executor ray needs Ray: pip install 'cai[ray]'") from None
        if not ray.is_initialized():
            if self.config.ray_address:
                # As `ray start` does: with a token at hand (~/.ray/auth_token, RAY_AUTH_TOKEN) and
                # RAY_AUTH_MODE unset, its cluster requires the token, which ray.init would not send.
                from ray._private.authentication.authentication_token_setup import (
                    maybe_enable_token_auth_if_token_available,
                )

                maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
            # vLLM's settings, yours of OpenMP and the API key (for actors that call servers) go to the actors too
            forwarded = {k: v for k, v in os.environ.items() if k.startswith("VLLM_") or k in FORWARDED}
            env = {**WORKER_ENV, **forwarded}
            try:
                ray.init(address=self.config.ray_address or "local", include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": env, "py_modules": [os.path.dirname(cai.__file__)]})
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise CaiError(f"could not reach the Ray cluster at {self.config.ray_address}: {e}") from None
        return ray

    def _replica_class(self, ray, engine):
        """The actor class: its resources and restarts, and on CPU how its OpenMP threads wait."""
        env = {}
        if self.config.replicas > 1 and (engine.vllm.threads or 0) > self.config.cpus_per_replica:
            # Replicas with more threads than CPUs may share cores, where OpenMP threads that spin
            # while they wait slow each other down: 2 replicas on 2 cores took 3.4x a local run's
            # time, 1.3x with threads that sleep (which cost a lone replica 18%).
            env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
        return ray.remote(num_cpus=self.config.cpus_per_replica, num_gpus=self.config.gpus_per_replica,
                          max_restarts=-1, max_task_retries=-1, runtime_env={"env_vars": env})(Replica)

    def map(self, stage, store: ChunkStore, works, cache: Path, tracker):
        ray = self._connect()
        engine = stage.engine.for_replicas()
        if engine.vllm.threads != stage.engine.vllm.threads:
            log.info("each replica computes with %d threads, as this process would (on CPU the sampled "
                     "tokens depend on it; --threads sets it)", engine.vllm.threads)
        actor = self._replica_class(ray, engine)
        replicas = []
        pending: dict = {}
        try:
            works = iter(works)
            exhausted = False
            while True:
                while not exhausted and len(pending) < IN_FLIGHT * self.config.replicas:
                    work = next(works, None)
                    if work is None:
                        exhausted = True
                        break
                    if len(replicas) < self.config.replicas:  # actors start only if there is work
                        replicas.append(actor.remote(engine, str(cache), stage.batch, str(store.output)))
                    replica = replicas[work.index % len(replicas)]
                    pending[replica.run.remote(work)] = work.index
                if not pending:
                    return
                tracker.step(f"{len(pending)} chunks in flight on {len(replicas)} replicas")
                (done,), _ = ray.wait(list(pending), num_returns=1)
                pending.pop(done)
                try:
                    yield ray.get(done)
                except ray.exceptions.RayTaskError as e:
                    cause = e.as_instanceof_cause()
                    if isinstance(cause, CaiError):
                        raise CaiError(str(cause).split("\n")[-1]) from None
                    raise
        finally:
            for replica in replicas:
                ray.kill(replica)
