"""Log lines never show a secret or a local variable, keep a bounded traceback, and never raise
into the code that logs: for structlog and for the standard library's loggers (uvicorn,
apscheduler, asyncio), in both log formats."""

import io
import json
import logging
import sys

import pytest
import structlog

from connector import logs
from connector.redact import DEFAULT

UC_KEY = "uc-simple-key-5f1d2c3b4a596877"
WEBHOOK_PASSWORD = "hook-pw-Zq8rT2vXw"
SHIPBOB_TOKEN = "sb-token-9a8b7c6d5e4f3a2b"
SECRETS = (UC_KEY, WEBHOOK_PASSWORD, SHIPBOB_TOKEN)
CARD = "4111111111111111"
LOCAL_ONLY = "LOCAL-VALUE-7731"  # held only by a local variable: must never be printed


LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "apscheduler.scheduler",
                   "apscheduler.executors.default", "httpx", "asyncio")


@pytest.fixture(autouse=True)
def restore_logging():
    """configure() changes process-wide state: put it back for the other tests. The libraries'
    loggers start clean, as in a fresh daemon process (tests before may have let uvicorn
    install its own handlers, or the bench raise apscheduler's level)."""
    DEFAULT.add(*SECRETS)  # what the runtime does with every configured secret
    config = structlog.get_config()
    root = logging.getLogger()
    ours, level, hook = [h for h in root.handlers if isinstance(h, logs._Handler)], root.level, sys.excepthook
    libraries = {}
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        libraries[name] = (lib.handlers[:], lib.propagate, lib.level, lib.disabled)
        lib.handlers[:], lib.propagate, lib.disabled = [], True, False
        lib.setLevel(logging.NOTSET)
    yield
    for name, (handlers, propagate, lib_level, disabled) in libraries.items():
        lib = logging.getLogger(name)
        lib.handlers[:], lib.propagate, lib.disabled = handlers, propagate, disabled
        lib.setLevel(lib_level)
    structlog.configure(**config)
    for handler in root.handlers[:]:  # pytest's own handlers come and go per phase: leave them
        if isinstance(handler, logs._Handler):
            root.removeHandler(handler)
    for handler in ours:
        root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook = hook


def pass_that_fails(message_extra: str = ""):
    """A function whose locals hold every secret (as a service pass's do) and whose exception
    message holds one."""
    api_key = UC_KEY
    webhook_password = WEBHOOK_PASSWORD
    shipbob_token = SHIPBOB_TOKEN
    marker = LOCAL_ONLY
    order = {"order_id": "DEMO-1", "payment": {"card": CARD}, "key": api_key}
    assert api_key and webhook_password and shipbob_token and marker and order
    raise RuntimeError(f"UltraCart refused simple key {api_key} for card {CARD}{message_extra}")


def configured(log_format: str, level: str = "info") -> io.StringIO:
    out = io.StringIO()
    logs.configure(log_format, level, stream=out)
    return out


def assert_clean(text: str) -> None:
    for secret in (*SECRETS, CARD, LOCAL_ONLY):
        assert secret not in text, secret
    assert "api_key =" not in text and "webhook_password" not in text  # no locals block of any kind


def log_with_structlog():
    try:
        pass_that_fails()
    except RuntimeError:
        structlog.get_logger("connector").exception("service pass failed", merchant="acme")


def log_with_stdlib():
    try:
        pass_that_fails()
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")


@pytest.mark.parametrize("log_format", ["console", "json"])
@pytest.mark.parametrize("emit", [log_with_structlog, log_with_stdlib], ids=["structlog", "stdlib"])
def test_an_exception_is_logged_with_a_redacted_traceback_and_no_locals(log_format, emit):
    out = configured(log_format)
    emit()
    text = out.getvalue()
    assert_clean(text)
    if log_format == "json":
        (line,) = text.splitlines()
        record = json.loads(line)
        trace = record["exception"]
        assert record["level"] == "error"
    else:
        trace = text
    assert "Traceback (most recent call last)" in trace and "in pass_that_fails" in trace
    assert "RuntimeError: UltraCart refused simple key *** for card ***" in trace


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_huge_exception_message_gives_a_bounded_line(log_format):
    out = configured(log_format)
    try:
        pass_that_fails(" " + "x" * 20_000_000)
    except RuntimeError as exc:
        structlog.get_logger("connector").error("service pass failed", exc_info=exc, error=str(exc))
    text = out.getvalue()
    assert_clean(text)
    assert len(text) < 3 * logs.TRACEBACK_CHARS  # the traceback and the error value, each bounded
    assert "characters in all]" in text and "in pass_that_fails" in text


def test_a_deep_traceback_keeps_its_last_frames_and_says_how_many_went():
    out = configured("json")

    def recurse(n: int):
        if n == 0:
            raise ValueError(f"bottom reached with {SHIPBOB_TOKEN}")
        recurse(n - 1)

    try:
        recurse(200)
    except ValueError:
        logging.getLogger("apscheduler.executors.default").exception("Job raised an exception")
    trace = json.loads(out.getvalue())["exception"]
    assert_clean(trace)
    assert trace.startswith(f"[{202 - logs.TRACEBACK_FRAMES} earlier frames not shown]")
    assert trace.endswith("ValueError: bottom reached with ***") and len(trace) <= logs.TRACEBACK_CHARS


def test_an_exception_whose_text_cannot_be_built_is_still_logged():
    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    out = configured("console")
    try:
        raise ValueError(deep)  # str() of it recurses too deep
    except ValueError:
        structlog.get_logger("connector").exception("webhook: the delivery could not be read")
    text = out.getvalue()
    assert "webhook: the delivery could not be read" in text and "ValueError" in text
    assert len(text) < 3 * logs.TRACEBACK_CHARS


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_every_value_of_a_line_is_redacted_and_bounded(log_format):
    out = configured(log_format)
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    node["card"] = CARD
    structlog.get_logger("connector").warning(
        f"calling with {UC_KEY}",
        error=RuntimeError(f"denied {WEBHOOK_PASSWORD}"),
        headers={"Authorization": f"Bearer {SHIPBOB_TOKEN}"},
        attempt=3,
        deep=deep,
        note=f"card {CARD} " + "n" * 100_000,
        items=(CARD, UC_KEY),
    )
    text = out.getvalue()
    assert_clean(text)
    assert "[nested deeper than 64 levels: not kept]" in text
    assert len(text) < 6 * logs.VALUE_CHARS
    assert "attempt=3" in text or '"attempt": 3' in text
    assert "RuntimeError: denied ***" in text


def test_stdlib_messages_and_their_arguments_are_redacted():
    out = configured("console")
    logging.getLogger("httpx").warning("HTTP Request: GET https://api.example/orders?key=%s", UC_KEY)
    text = out.getvalue()
    assert "key=***" in text and "[httpx]" in text
    assert_clean(text)


def test_stdlib_libraries_stay_at_warning_unless_debugging():
    out = configured("console", "info")
    logging.getLogger("apscheduler.scheduler").info("Added job %s", "x")
    structlog.get_logger("connector").info("structlog info is shown")
    assert "Added job" not in out.getvalue() and "structlog info is shown" in out.getvalue()
    out = configured("console", "debug")
    logging.getLogger("apscheduler.scheduler").info("Added job %s", "x")
    assert "Added job x" in out.getvalue()


def test_configure_twice_installs_one_handler():
    configured("console")
    out = configured("json")
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    assert len(out.getvalue().splitlines()) == 1


def test_a_broken_stdlib_call_does_not_print_its_arguments(capsys):
    out = configured("console")
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logs._Handler)]
    # A bug in a library's call: the arguments do not fit the format. (Sent to our handler only:
    # pytest's capture handler raises on it.)
    handler.handle(logging.LogRecord("some.lib", logging.ERROR, __file__, 1, "count %d", (f"not a number {UC_KEY}",), None))
    captured = capsys.readouterr()
    assert_clean(out.getvalue() + captured.err + captured.out)
    assert "could not be formatted" in out.getvalue()


def test_a_failing_stream_never_raises_into_the_caller():
    out = configured("console")
    out.close()
    structlog.get_logger("connector").error("the disk is full", merchant="acme")
    logging.getLogger("uvicorn.error").error("and so is this")


def test_an_uncaught_exception_goes_through_the_log():
    out = configured("json")
    try:
        pass_that_fails()
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    record = json.loads(out.getvalue())
    assert record["level"] == "critical" and "in pass_that_fails" in record["exception"]
    assert_clean(out.getvalue())


def test_uvicorn_run_with_log_config_none_logs_through_the_same_processors():
    """What the daemon needs from uvicorn: `log_config=None`, so its loggers have no handler of
    their own and propagate to ours (uvicorn's default config prints tracebacks raw)."""
    import uvicorn

    out = configured("json")
    uvicorn.Config(app=lambda *a: None, log_config=None, log_level="warning")  # configures uvicorn's loggers
    try:
        pass_that_fails()
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    record = json.loads(out.getvalue())
    assert record["logger"] == "uvicorn.error" and "in pass_that_fails" in record["exception"]
    assert_clean(out.getvalue())
