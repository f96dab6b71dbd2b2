"""The engine layer: request cache, retries and stats above a backend; the shared prompt encoder; models."""
