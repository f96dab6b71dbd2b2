"""The run folder, a stage as data and the one `execute`, chunks, sources, row schemas, errors, progress."""
