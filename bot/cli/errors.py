"""The command line's exit codes and its one-line errors.

Exit codes: 0 ok; 1 a check failed (``--strict`` with definitions left undocumented or
no model answering, coverage below ``--fail-under`` / ``coverage_threshold``, or an
``--apply`` that could not write a file), each with a line on stderr saying why; 2 usage
or configuration error, with a one-line message on stderr.
"""

from __future__ import annotations

from pydantic import ValidationError

from bot.config import Settings

EXIT_OK, EXIT_UNDOCUMENTED, EXIT_USAGE = 0, 1, 2
EXIT_FAILED = EXIT_UNDOCUMENTED  # any check that failed: one code for CI, the reason on stderr


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a one-line UsageError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise UsageError(f"invalid environment variable {name}: {err['msg']}") from None
