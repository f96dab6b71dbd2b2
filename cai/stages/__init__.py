"""Stages: batch functions, records in and records out, the engine passed in.

They keep no state between calls, so the same code runs in the CLI over a whole file, or inside
Ray Data actors (`map_batches`) over shards.
"""
