"""The jobs as the CLI runs them (a stage description, then `execute` on the local executor), in
one call each, for tests that run a stage on the tiny model's engine config."""

from cai.core.run import RunDir
from cai.executors.local import LocalExecutor
from cai.workflows import jobs


def generate(run: RunDir, prompts, engine, config, limit=None, stage="generate", chunk_size=jobs.CHUNK_SIZE,
             force=False, prompt_field="prompt"):
    described = jobs.generate_stage(prompts, config, engine, prompt_field, limit, stage)
    return jobs.execute(run, described, LocalExecutor(), chunk_size, force)


def critique(run: RunDir, engine, constitution, config, chunk_size=jobs.CHUNK_SIZE, force=False):
    return jobs.execute(run, jobs.critique_stage(run, constitution, config, engine), LocalExecutor(), chunk_size, force)


def label(run: RunDir, engine, constitution, config, chunk_size=jobs.CHUNK_SIZE, force=False):
    return jobs.execute(run, jobs.label_stage(run, constitution, config, engine), LocalExecutor(), chunk_size, force)


def eval_judge(pairs, out, engine, constitution, config, limit=None, chunk_size=jobs.CHUNK_SIZE, force=False):
    run = RunDir(out)
    stage = jobs.eval_judge_stage(pairs, constitution, config, engine, limit=limit)
    report = jobs.execute(run, stage, LocalExecutor(), chunk_size, force)
    return jobs.eval_judge_summary(run, report, config)
