"""The constitution: its schema and checks, importers of published ones, seeded principle draws."""
