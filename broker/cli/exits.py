"""The command line's exit codes and its one kind of failure, ``CliError``: one line on
standard error, never a traceback.

    0  done
    1  a check found a problem (``audit verify``: chain broken; ``migrate --check``: behind)
    2  usage: a bad option or argument, an input file that cannot be read or parsed
    3  conflict (HTTP 409): it exists already (a duplicate create), or try again later (a
       rotation too early, a concurrent change)
    4  not found (HTTP 404: no such tenant, client, partner, ...)
    5  refused: the request was understood and refused (HTTP 400: a value out of range, an
       unknown field, a state that does not allow it)
    6  unavailable: the deployment cannot be used (no database, wrong or missing master key,
       schema behind, the remote broker unreachable or failing)
    7  not allowed: the admin token is missing or wrong (HTTP 401/403)
"""

from __future__ import annotations

OK, CHECK_FAILED, USAGE, CONFLICT, NOT_FOUND, REFUSED, UNAVAILABLE, DENIED = range(8)


class CliError(Exception):
    """A failure to report as ``error: <message>`` with exit ``code``."""

    def __init__(self, message: str, code: int = REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def for_status(status: int) -> int:
    """The exit code for an admin API answer's HTTP status (an error)."""
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status in (401, 403):
        return DENIED
    if status >= 500:
        return UNAVAILABLE
    return REFUSED
