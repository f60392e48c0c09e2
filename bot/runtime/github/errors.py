"""The one exception tree for GitHub failures.

Messages carry the method, route, status and GitHub's message: never a token, the JWT
or the private key.
"""

from __future__ import annotations

from collections.abc import Sequence


class GitHubError(Exception):
    """A GitHub request failed.  ``route`` is the template (``GET /repos/{owner}/…``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        route: str = "",
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.route = route
        self.errors = tuple(errors)


class NotFound(GitHubError):
    """404: the resource does not exist, or the installation cannot see it."""


class Unauthorized(GitHubError):
    """401: GitHub rejected the JWT or the installation token (clock skew, revoked)."""


class Forbidden(GitHubError):
    """403 that is not a rate limit: the App lacks a permission, or the resource is locked."""


class Unprocessable(GitHubError):
    """422: GitHub understood the request and refused it; ``errors`` says why."""

    @property
    def reason(self) -> str:
        """GitHub's message and its error details, on one line."""
        return "; ".join(self.errors) if self.errors else str(self)


class GitHubUnavailable(GitHubError):
    """GitHub is rate limiting us or failing; try again at ``retry_at`` (epoch seconds)."""

    def __init__(
        self, message: str, *, retry_at: float, status: int | None = None, route: str = ""
    ) -> None:
        super().__init__(message, status=status, route=route)
        self.retry_at = retry_at
