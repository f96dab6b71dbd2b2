"""cai: turn a written constitution into Constitutional AI training data."""

__version__ = "0.1.0"
