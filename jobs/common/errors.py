"""Errors a user can act on. The CLI prints them as one line (the stack trace only with --debug)."""


class CdpError(Exception):
    """An expected failure with a message that says what went wrong and what to do."""


class QualityGateFailed(CdpError):
    """A blocking data-quality expectation failed; downstream work must not run."""


class ReconciliationError(CdpError):
    """Rows read != rows written + rows quarantined for a batch."""
