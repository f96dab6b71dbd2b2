"""`cai run`: the stage registry, the pipeline file, its plan and runner, the starter project, plugins."""
