"""Errors a user can act on: the CLI prints their message as one line and exits non-zero."""


class UserError(Exception):
    """A problem with input, configuration or data that the user can fix; the message says how."""
