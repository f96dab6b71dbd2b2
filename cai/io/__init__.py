"""Reading input files: prompts, pairs and conversations in any format; YAML with line numbers."""
