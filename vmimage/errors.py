"""The CLI's errors and the exit codes scripts can rely on (documented in `vmimage --help`)."""

from __future__ import annotations

OK = 0
FAILED = 1  # the service answered with an error, or the disk/capture was rejected or failed
USAGE = 2  # bad arguments (argparse uses 2 as well)
UNREACHABLE = 3  # the catalog or the storage account could not be reached
TIMED_OUT = 4  # gave up waiting for an upload or capture to finish
INTERRUPTED = 130  # Ctrl-C

EXIT_CODES = {
    OK: "success",
    FAILED: "the service said no: an API error, an upload rejected, a capture failed",
    USAGE: "bad arguments, or a local file that can't be used",
    UNREACHABLE: "the catalog (or the storage account) could not be reached",
    TIMED_OUT: "gave up waiting (--timeout) for an upload or a capture",
}


class CliError(Exception):
    """An error shown as `vmimage: error: <Code>: <Message>` with its exit code."""

    exit_code = FAILED

    def __init__(self, code: str, message: str, *, details: object = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details  # e.g. the upload outcome or operation, printed with --json


class ApiError(CliError):
    """The catalog answered with an error status (its {Code, Message})."""

    def __init__(self, code: str, message: str, status: int = 0, **kw: object) -> None:
        super().__init__(code, message, **kw)  # type: ignore[arg-type]
        self.status = status


class Rejected(CliError):
    """An upload rejected (locally or by the catalog), or a capture that failed."""


class UsageError(CliError):
    exit_code = USAGE


class Unreachable(CliError):
    exit_code = UNREACHABLE


class TimedOut(CliError):
    exit_code = TIMED_OUT
