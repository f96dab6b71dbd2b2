"""The files trainers read: SFT rows, preference pairs, rule data."""
