"""Errors a user can act on. The CLI prints them as one line (the stack trace only with --debug)."""


class CdpError(Exception):
    """An expected failure with a message that says what went wrong and what to do."""


class QualityGateFailed(CdpError):
    """A blocking data-quality expectation failed; downstream work must not run."""


class ReconciliationError(CdpError):
    """Rows read != rows written + rows quarantined for a batch."""


def validation_problems(exc: Exception, prefix: str = "", empty: str = "") -> str:
    """A pydantic ValidationError as one line: `loc.path: message; ...`, each path after
    `prefix` (`silver.` for a spec's silver section); a problem of the whole document is named
    `empty`, or given alone."""

    def line(error: dict) -> str:
        path = prefix + ".".join(str(p) for p in error["loc"]) if error["loc"] else empty
        return f"{path}: {error['msg']}" if path else error["msg"]

    return "; ".join(line(e) for e in exc.errors())  # type: ignore[attr-defined]
