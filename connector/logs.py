"""Logging setup: structlog, console or JSON lines, with every value passed through redaction.

One chain of processors serves structlog and the standard library's logging (uvicorn,
apscheduler, asyncio, httpx log there), so every line is redacted and bounded the same way:

- an exception is formatted into plain text first (never with local variables: they hold API
  keys, passwords and whole payloads), then redacted, then bounded: the last
  `TRACEBACK_FRAMES` frames and at most `TRACEBACK_CHARS` characters, with a note of what was cut.
  Console lines print it under the line; JSON lines carry it in an `exception` field;
- every other value is redacted and cut to `VALUE_CHARS` characters; values that are not plain
  data (exceptions, objects) are logged as their redacted text.

A log line never raises into the code that logs: a stream that fails (closed, broken pipe,
full disk) loses the line, not the pass.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from types import TracebackType
from typing import Any

import structlog

from connector.redact import DEFAULT as REDACT

TRACEBACK_FRAMES = 20  # per exception of a chain: the frames nearest the error
TRACEBACK_CHARS = 8_000
VALUE_CHARS = 8_000  # any other value of a log line
_PART_CHARS = 3_000  # one part of a traceback: a frame, an exception message (which can be megabytes)
_OWN_KEYS = ("exc_info", "exception", "stack_info", "stack")  # formatted by _exceptions


class _Stream:
    """The file log lines go to. Without an explicit stream, whatever sys.stderr is when a line
    is written (tests and the CLI swap it). Write errors are swallowed: logging must never stop
    the flow."""

    def __init__(self, target=None):
        self._target = target

    def write(self, text: str) -> int:
        try:
            return (self._target or sys.stderr).write(text)
        except (OSError, ValueError):  # closed or broken stream, full disk
            return 0

    def flush(self) -> None:
        try:
            (self._target or sys.stderr).flush()
        except (OSError, ValueError):
            pass


class _Handler(logging.StreamHandler):
    """The root handler: standard-library records through the same processors."""

    def handleError(self, record: logging.LogRecord) -> None:
        # The stock handler prints the record's message and arguments unredacted, with a
        # traceback: say only that a line was lost.
        try:
            self.stream.write(f"logging error: a {record.levelname} line from {record.name} could not be formatted\n")
        except Exception:  # noqa: BLE001 - nothing more can be done from here
            pass


def _redact(_logger, _name, event_dict):
    for key, value in list(event_dict.items()):
        if key in _OWN_KEYS or value is None or isinstance(value, bool | int | float):
            continue
        if isinstance(value, str):
            event_dict[key] = REDACT.clipped(value, VALUE_CHARS)
        elif isinstance(value, dict | list):
            event_dict[key] = _bounded_data(value)
        else:  # exceptions and other objects: their text, which is where their secrets are
            event_dict[key] = REDACT.clipped(_safe_text(value), VALUE_CHARS)
    return event_dict


def _bounded_data(value: dict | list) -> Any:
    """Redacted data as it is when it fits in VALUE_CHARS, else its redacted JSON text, cut."""
    redacted = REDACT.data(value)  # depth-bounded: json.dumps cannot recurse away on it
    try:
        text = json.dumps(redacted, default=str)
    except (TypeError, ValueError):  # circular: its text (repr marks the cycle)
        return REDACT.clipped(_safe_text(redacted), VALUE_CHARS)
    return redacted if len(text) <= VALUE_CHARS else REDACT.clipped(text, VALUE_CHARS)


def _safe_text(value: Any) -> str:
    try:
        if isinstance(value, BaseException):
            return f"{type(value).__name__}: {value}"
        return str(value)
    except Exception:  # noqa: BLE001 - a str() that fails (or recurses) must not lose the line
        return f"<{type(value).__name__} that cannot be shown>"


def _exceptions(_logger, _name, event_dict):
    """exc_info (True, an exception or a tuple) -> `exception`: redacted, bounded plain text."""
    exc_info = _exc_info(event_dict.pop("exc_info", None))
    if exc_info is not None:
        event_dict["exception"] = format_exception(*exc_info)
    elif isinstance(event_dict.get("exception"), str):  # text a caller rendered itself
        event_dict["exception"] = _last_lines(_redacted_lines([event_dict["exception"]], by_line=True))
    for key in ("stack_info", "stack"):  # a stack rendered by the stdlib (stack_info=True)
        if isinstance(event_dict.get(key), str):
            event_dict[key] = _last_lines(_redacted_lines([event_dict[key]], by_line=True))
    return event_dict


def _exc_info(value: Any) -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    if value is True or (value and not isinstance(value, tuple)):
        info = sys.exc_info()
        return info if info[1] is not None else None
    return None


def format_exception(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> str:
    """A traceback as plain text without local variables, redacted, in at most TRACEBACK_CHARS
    characters: the last TRACEBACK_FRAMES frames of each exception of the chain, each part (an
    exception message, however long) cut to _PART_CHARS, then the oldest lines dropped, with a
    note of each cut."""
    frames = sum(1 for _ in traceback.walk_tb(tb))  # iterative
    try:
        parts = list(traceback.TracebackException(exc_type, exc, tb, limit=-TRACEBACK_FRAMES, capture_locals=False).format())
    except Exception as failure:  # noqa: BLE001 - a traceback that cannot be built: keep the type at least
        parts = [f"{exc_type.__name__} (its traceback could not be formatted: {type(failure).__name__})\n"]
    note = f"[{frames - TRACEBACK_FRAMES} earlier frames not shown]" if frames > TRACEBACK_FRAMES else ""
    return _last_lines(_redacted_lines(parts, by_line=False), note)


def _redacted_lines(parts: list[str], by_line: bool) -> list[str]:
    """Redact then cut each part (or each line of it: for text whose parts are unknown), so no
    cut splits a secret; the result as lines."""
    lines: list[str] = []
    for part in parts:
        pieces = part.splitlines() if by_line else [part.rstrip("\n")]
        for piece in pieces:
            lines.extend(REDACT.clipped(piece, _PART_CHARS).splitlines())
    return lines


def _last_lines(lines: list[str], note: str = "") -> str:
    """The last lines that fit in TRACEBACK_CHARS, after a note of what was left out."""
    room = TRACEBACK_CHARS - len(note) - 80  # 80: the note of dropped lines
    kept = 0
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > room:
            break
        size += len(line) + 1
        kept += 1
    if kept < len(lines):
        note = f"{note}\n[{len(lines) - kept} earlier lines not shown]" if note else f"[{len(lines) - kept} earlier lines not shown]"
    return "\n".join(([note] if note else []) + lines[len(lines) - kept:])


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        _exceptions,
    ]


def configure(log_format: str = "console", level: str = "info", stream=None) -> None:
    """Log lines of `level` and above to `stream` (else stderr) as console text or JSON lines;
    the standard library's loggers go through the same processors at WARNING and above (all of
    them at `debug`)."""
    out = _Stream(stream)
    numeric = getattr(logging, level.upper())
    renderer = (structlog.processors.JSONRenderer() if log_format == "json"
                else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback))
    structlog.configure(
        processors=[*_shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = _Handler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_shared_processors(), renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries chatter at INFO (a line per HTTP request, per scheduler run): warnings and up
    # unless debugging.
    root.setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    sys.excepthook = _excepthook


def _excepthook(exc_type, exc, tb) -> None:
    """An uncaught exception ends the program through the log, redacted, not as a raw dump."""
    if issubclass(exc_type, KeyboardInterrupt | SystemExit):
        sys.__excepthook__(exc_type, exc, tb)
        return
    try:
        structlog.get_logger("connector").critical("uncaught exception; the program stops", exc_info=(exc_type, exc, tb))
    except Exception:  # noqa: BLE001 - the last resort must not print what it was meant to hide
        sys.__stderr__.write(f"uncaught {exc_type.__name__}; the log could not show it\n")
