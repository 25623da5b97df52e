"""Logging setup: structlog, console or JSON lines, with every value passed through redaction."""

from __future__ import annotations

import logging
import sys

import structlog

from connector.redact import DEFAULT as REDACT


def _redact(_logger, _name, event_dict):
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = REDACT.text(value)
        elif isinstance(value, dict | list):
            event_dict[key] = REDACT.data(value)
    return event_dict


def configure(log_format: str = "console", level: str = "info", stream=None) -> None:
    stream = stream or sys.stderr
    renderer = structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
