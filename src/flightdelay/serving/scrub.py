"""Credentials never leave the service: every error message, 503 body and log line of the
service passes through :func:`scrub`, which masks the password of any URL in it
(`scheme://user:***@host`), and is cut to a bounded length."""

from __future__ import annotations

import logging
import re

# scheme://user:password@ anywhere in a text (the password may hold anything but @ and spaces)
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
MAX_MESSAGE = 2000


def scrub(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` with URL passwords masked, at most `limit` characters."""
    masked = _CREDENTIALS.sub(r"\1***@", text)
    return masked if len(masked) <= limit else masked[: limit - 3] + "..."


class ScrubFilter(logging.Filter):
    """A logging filter that masks URL passwords in the message and the traceback of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; always keeps it."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = scrub(message, 100_000), None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, 100_000)
        return True


def install_log_scrubbing(*names: str) -> None:
    """Attach one ScrubFilter to each named logger (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubFilter) for f in logger.filters):
            logger.addFilter(ScrubFilter())
