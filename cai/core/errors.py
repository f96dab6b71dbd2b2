"""Errors that are the user's to fix: the CLI prints them as one clear line, never a traceback."""


class CaiError(Exception):
    pass
