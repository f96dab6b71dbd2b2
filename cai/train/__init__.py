"""Training stages: thin, honest layers over TRL's trainers (SFT, reward model, PPO/RLOO/GRPO, DPO).

Each job builds the TRL config from a YAML file whose keys are that config's fields, with
command-line flags over it, trains, saves a model vLLM can load, and records what it ran.
"""
