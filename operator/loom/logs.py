"""Operator log lines a platform engineer can read and ship: an ISO-8601 UTC timestamp, the level,
and the Kubernetes object the line is about, as plain text or as one JSON object per line.

Kopf already marks its per-object records (the `logger` it passes to handlers) with the object as
the `k8s_ref` extra, and `kopf.configure` sets levels and the root handler; Loom only adds the
formatters. Loom's module loggers (in services, below the handlers) learn the object from `about()`,
which a handler calls once per invocation."""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import kopf

from loom.config import LogFormat

REF = "k8s_ref"  # the record attribute Kopf's ObjectLogger sets: {apiVersion, kind, namespace, name, uid}

_current: ContextVar[dict[str, Any] | None] = ContextVar("loom_log_object", default=None)


def ref(kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    return {"kind": kind, "namespace": namespace, "name": name}


def extra(kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    """`extra=` for a log call about one object made outside a Kopf handler's `logger`."""
    return {REF: ref(kind, namespace, name)}


def about(kind: str, namespace: str | None, name: str) -> None:
    """Attribute every later record of this handler invocation to one object. Kopf runs each sync
    handler in its own copy of the context, so this ends with the invocation."""
    _current.set(ref(kind, namespace, name))


def object_of(record: logging.LogRecord) -> dict[str, str] | None:
    """kind, namespace and name (those known) of the object a record is about, if any."""
    found = getattr(record, REF, None) or _current.get()
    if not found:
        return None
    return {key: str(found[key]) for key in ("kind", "namespace", "name") if found.get(key)}


def timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, tz=timezone.utc)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z"


def _details(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """Traceback and stack of a record, as the standard formatter renders them."""
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


class PlainFormatter(logging.Formatter):
    """`2026-12-02T14:03:01.123Z INFO  [DataLake ns/name] message`."""

    def format(self, record: logging.LogRecord) -> str:
        obj = object_of(record)
        where = ""
        if obj:
            path = "/".join(obj[key] for key in ("namespace", "name") if key in obj)
            where = f"[{obj['kind']} {path}] " if "kind" in obj else f"[{path}] "
        line = f"{timestamp(record)} {record.levelname:<5} {where}{record.getMessage()}"
        details = _details(self, record)
        return f"{line}\n{details}" if details else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, and object and exception when known."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        obj = object_of(record)
        if obj:
            entry["object"] = obj
        details = _details(self, record)
        if details:
            entry["exception"] = details
        return json.dumps(entry, ensure_ascii=False, default=str)


class QuietWatchHandlers(logging.Filter):
    """Kopf logs every success of every handler at INFO, and Loom's watch handlers (the wake-ups of
    `handlers/triggers.py`, ids `wake` and `follow-*`) succeed at every watch event of every object:
    thousands of lines that say nothing. They are demoted to DEBUG, so `--verbose` still shows them."""

    SUCCEEDED = re.compile(r"Handler '(wake|follow-[\w-]+)' succeeded\.")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and isinstance(record.msg, str) and self.SUCCEEDED.fullmatch(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format is LogFormat.JSON else PlainFormatter()


def configure(log_format: LogFormat, *, verbose: bool = False) -> None:
    """Kopf's own set-up (root level, asyncio quieted, its stream handler on the root logger, replacing
    one from an earlier call), then Loom's formatter on the handler Kopf added."""
    root = logging.getLogger()
    before = set(root.handlers)
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    for handler in root.handlers:
        if handler not in before:
            handler.setFormatter(make_formatter(log_format))
            handler.addFilter(QuietWatchHandlers())
