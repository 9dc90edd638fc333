"""Typed domain errors, each with a stable machine-readable code.

Entry points map them once to HTTP statuses, operation records and upload
outcomes; nothing else decides how an error looks to a user.
"""

from __future__ import annotations


class CatalogError(Exception):
    """An error a user can act on. `code` is stable; `message` is for people."""

    code: str = "CatalogError"
    status: int = 400  # the HTTP status this error maps to

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidParameter(CatalogError):
    code = "InvalidParameter"
    status = 400


class NotFound(CatalogError):
    code = "ResourceNotFound"
    status = 404


class Conflict(CatalogError):
    code = "ConflictError"
    status = 409


class StorageUnavailable(CatalogError):
    """Storage can't be reached or is failing: the request may be fine; send it again."""

    code = "StorageUnavailable"
    status = 503
    retry_after = 10  # seconds, the Retry-After of the answer

    def __init__(self, why: str) -> None:
        super().__init__(
            f"The catalog's storage is unavailable ({why}); try again in {self.retry_after} s."
        )


class UploadRejected(CatalogError):
    """A dropped blob that will never become an image, with the reason."""

    code = "UploadRejected"
    status = 400


def describe_validation_error(e: Exception, whole: str = "body") -> str:
    """A pydantic ValidationError as one line naming each bad field (at most five)."""
    errors = getattr(e, "errors", None)
    if errors is None:
        return str(e)
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}" for err in errors()[:5]
    )
