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
# An address's "@" in every form it reaches a log line in: plain, percent-encoded (uvicorn's
# access log quotes paths: %40; a query string encoded twice: %2540), JSON- and HTML-escaped.
_AT = re.compile(r"@|%(?:25)*40|\\u0040|&#(?:64|x40);", re.IGNORECASE)
# Every character an address's local part may hold besides letters and digits (RFC 5322's
# atext and the dot), so that `sean.o'brien@` is masked whole; `%` also stands for itself
# in a percent-encoded address.
_LOCAL_PUNCTUATION = frozenset("!#$%&'*+-/=?^_`{|}~.")
# Longer messages are cut after redaction: one request must not write megabytes of log.
MESSAGE_MAX_CHARS = 4096

# Context the Temporal SDK's workflow and activity loggers attach, and ours.
_TEMPORAL_KEYS = ("workflow_id", "run_id", "workflow_type", "activity_id", "activity_type", "attempt", "task_queue")
_OUR_KEYS = ("partner_id", "invitation_id", "enterprise_id", "send_number")


def redact(text: str) -> str:
    """Invitation tokens out, e-mail addresses masked (`a…@domain`), in time linear in the
    text whatever it holds: it runs on every log line, request lines a caller chose included.
    (A regular expression that looks for the local part from every position backtracks
    over the same run again from each one: quadratic, seconds for a 32 KB request line.)"""
    return _mask_local_parts(_LINK.sub(r"\1<redacted>", text))


def _mask_local_parts(text: str) -> str:
    """Every run of local-part characters before an "@" (in any of its forms) becomes its
    first character and "…". Each character is looked at once: a run ends at the previous
    "@" at the latest."""
    kept: list[str] = []
    done = 0  # text[:done] is already in `kept`
    for at in _AT.finditer(text):
        start = at.start()
        while start > done and (text[start - 1].isalnum() or text[start - 1] in _LOCAL_PUNCTUATION):
            start -= 1
        if start < at.start():
            kept.append(text[done : start + 1])
            kept.append("…")
            kept.append("@")
            done = at.end()
    if not kept:
        return text
    kept.append(text[done:])
    return "".join(kept)


class RedactingFilter(logging.Filter):
    """On the handler, so that every logger (uvicorn's access log included) passes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        if len(message) > MESSAGE_MAX_CHARS:
            message = f"{message[:MESSAGE_MAX_CHARS]}… ({len(message) - MESSAGE_MAX_CHARS} characters cut)"
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


def exit_after_clean_shutdown(code: int = 0) -> NoReturn:
    """Ends a process whose work is drained without CPython's finalization, where the
    Temporal SDK's Rust threads can abort it (sdk-python#300: "PyGILState_Release ...
    finalizing", SIGABRT): a worker that stopped cleanly would look crashed to its
    orchestrator on about one stop in three (seen in bench runs), and the CLI would exit
    -6 after printing its answer (seen in the suite). Logs are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
