"""Errors that are the user's to fix: the CLI prints their message alone (no traceback), exit 2."""


class UsageError(Exception):
    """A command that cannot run as asked (no lab up, an unknown name, ...); the message says what to do."""
