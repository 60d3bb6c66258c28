"""How every Aftercare process logs: readable lines for people, JSON lines for log shippers.

``AFTERCARE_LOG_FORMAT=text`` (the default) writes ``[time] [pid] [LEVEL] message``;
``AFTERCARE_LOG_FORMAT=json`` one JSON object per line with ``time`` (ISO 8601, UTC), ``level``,
``logger``, ``process``, ``message`` and, for an exception, ``exc_info`` (python-json-logger).
Both go to stderr, at ``AFTERCARE_LOG_LEVEL``.

At info level no line carries personal data: the senders log touchpoint and customer ids, never
an address, a phone number, a token or a message body (``tests/integration/test_logs.py`` reads
the logs of a whole run to keep it so). Libraries that would log more are turned down here.

The failed bootstrap attempts aiokafka logs as errors (``Unable connect to "host:port": ...``) are
kept out of the log and remembered instead, so that a command that cannot reach its cluster
ends in one line naming each server and why (:func:`bootstrap_failures`).
"""

from __future__ import annotations

import logging
import logging.config
import os
import socket
from typing import Any

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"

# Loggers that say more than an operator needs at info, or more than may be logged.
QUIET = {
    "httpx": "WARNING",  # one line per provider request, with its URL
    "httpcore": "WARNING",
    "mail.log": "WARNING",  # the SMTP server's per-session chatter (addresses among it)
}


def logging_config(level: str, form: str) -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` of a process (Faust's worker takes it as is)."""
    formatter: dict[str, Any]
    if form == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"aftercare": formatter},
        "filters": {"bootstrap": {"()": "pipeline.logs.BootstrapFailures"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "aftercare",
                "filters": ["bootstrap"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": quiet} for name, quiet in QUIET.items()},
    }


def configure(level: str, form: str) -> None:
    """Configure logging for a process that is not a Faust worker."""
    logging.config.dictConfig(logging_config(level, form))


_FAILURES: dict[str, str] = {}
_BOOTSTRAP_FAILED = 'Unable connect to "%s:%s": %s'  # aiokafka.client's words, to the letter


class BootstrapFailures(logging.Filter):
    """Keeps aiokafka's failed bootstrap attempts out of the log and remembers each server's
    reason, for the one line that says the cluster did not answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "aiokafka" and record.msg == _BOOTSTRAP_FAILED:
            host, port, error = record.args if isinstance(record.args, tuple) else ("?", "?", "")
            _FAILURES[f"{host}:{port}"] = _reason(error)
            return False
        return True


def _reason(error: object) -> str:
    """``Connection refused``, ``Name or service not known``: the system's words for it."""
    if isinstance(error, socket.gaierror) and error.strerror:
        return error.strerror
    if isinstance(error, OSError) and error.errno and error.errno > 0:
        return os.strerror(error.errno)
    return " ".join(str(error).split()) or type(error).__name__


def install_bootstrap_filter() -> None:
    """For commands that configure no logging: route aiokafka's bootstrap errors through the
    filter rather than Python's last-resort handler (which would print them)."""
    client = logging.getLogger("aiokafka")  # what aiokafka.client logs on
    if not any(isinstance(f, BootstrapFailures) for f in client.filters):
        client.addFilter(BootstrapFailures())


def bootstrap_failures() -> dict[str, str]:
    """``host:port`` -> why connecting to it failed, for each server tried so far."""
    return dict(_FAILURES)
