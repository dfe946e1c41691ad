"""Logging for every process: text or JSON, and never a token, a link or a full address."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, NoReturn

from temporalio import activity, workflow

_LINK = re.compile(r"(/invitations/)[A-Za-z0-9_-]{20,}")
_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")

# Context the Temporal SDK's workflow and activity loggers attach, and ours.
_TEMPORAL_KEYS = ("workflow_id", "run_id", "workflow_type", "activity_id", "activity_type", "attempt", "task_queue")
_OUR_KEYS = ("partner_id", "invitation_id", "enterprise_id", "send_number")


def redact(text: str) -> str:
    """Invitation tokens out, e-mail addresses masked (`a…@domain`)."""
    return _EMAIL.sub(r"\1…@\2", _LINK.sub(r"\1<redacted>", text))


class RedactingFilter(logging.Filter):
    """On the handler, so that every logger (uvicorn's access log included) passes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for source in ("temporal_workflow", "temporal_activity"):
            context = getattr(record, source, None)
            if isinstance(context, dict):
                entry.update({k: context[k] for k in _TEMPORAL_KEYS if k in context})
        for key in _OUR_KEYS:
            if (value := getattr(record, key, None)) is not None:
                entry[key] = str(value)
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class _RedactingTextFormatter(logging.Formatter):
    """Text lines, their tracebacks (exception messages quote addresses) redacted too."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def handler(log_format: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """The one handler of a process: redacting, in text or JSON."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    if log_format == "json":
        # The SDK's context goes into fields of their own, not at the end of the message.
        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    return handler


def configure(log_format: str = "text", level: str = "INFO") -> None:
    root = logging.getLogger()
    root.handlers[:] = [handler(log_format)]
    root.setLevel(level)


def exit_after_clean_shutdown() -> NoReturn:
    """Ends a process whose work is drained without CPython's finalization, where the
    Temporal SDK's Rust threads can abort it (sdk-python#300: "PyGILState_Release ...
    finalizing", SIGABRT): a worker that stopped cleanly would look crashed to its
    orchestrator on about one stop in three (seen in bench runs). Logs are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
