"""The error taxonomy (DESIGN section 5): every vendor failure becomes one of five classes.

`classify_status` is the one table that turns an HTTP status into a class; `adapters/http.py`
applies it to every vendor call, so the pipeline reasons about classes, never about status codes.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    transient = "transient"  # retry soon (in-call, then the outbox with backoff)
    rate_limited = "rate_limited"  # reschedule at the vendor's reset time; never sleep in a job
    in_doubt = "in_doubt"  # a create may have happened: look the reference up before resending
    permanent = "permanent"  # this record is wrong; fail it now with the vendor's message
    configuration = "configuration"  # credentials, disabled app, unknown DC: pause the service


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """The configuration file is wrong; `path` names the key (e.g. `merchants[0].ultracart.api_key`)."""

    def __init__(self, file: str, path: str, message: str):
        self.file, self.path, self.message = file, path, message
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class VendorError(ConnectorError):
    """A vendor call failed. `error_class` says what to do; `message` is the vendor's own words."""

    error_class: ErrorClass = ErrorClass.transient

    def __init__(
        self,
        message: str,
        *,
        vendor: str = "",
        status: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
        error_class: ErrorClass | None = None,
        not_sent: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.not_sent = not_sent  # the request never reached the vendor: any retry is safe
        if error_class is not None:
            self.error_class = error_class

    def __str__(self) -> str:
        parts = [self.vendor or "vendor"]
        if self.status:
            parts.append(str(self.status))
        text = " ".join(parts) + f": {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class TransientError(VendorError):
    error_class = ErrorClass.transient


class RateLimitedError(VendorError):
    error_class = ErrorClass.rate_limited


class InDoubtError(VendorError):
    error_class = ErrorClass.in_doubt


class PermanentError(VendorError):
    error_class = ErrorClass.permanent


class ConfigurationError(VendorError):
    error_class = ErrorClass.configuration


_BY_CLASS: dict[ErrorClass, type[VendorError]] = {
    ErrorClass.transient: TransientError,
    ErrorClass.rate_limited: RateLimitedError,
    ErrorClass.in_doubt: InDoubtError,
    ErrorClass.permanent: PermanentError,
    ErrorClass.configuration: ConfigurationError,
}


def classify_status(status: int, *, idempotent: bool) -> ErrorClass:
    """The table. `idempotent` is False for creates, where a 5xx leaves the outcome unknown."""
    if status == 429:
        return ErrorClass.rate_limited
    if status in (401, 403, 410):
        return ErrorClass.configuration
    if status >= 500:
        return ErrorClass.transient if idempotent else ErrorClass.in_doubt
    if status == 408:
        return ErrorClass.transient if idempotent else ErrorClass.in_doubt
    return ErrorClass.permanent


def error_for(error_class: ErrorClass, message: str, **kw) -> VendorError:
    """Build the exception of a class (the class is also kept on the instance)."""
    return _BY_CLASS[error_class](message, error_class=error_class, **kw)
