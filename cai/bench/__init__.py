"""`cai bench`: cai's overhead over raw vLLM, memory, resume, executors and model load time."""
