"""Judge metrics and policy Elo."""
