"""``docgen setup``: register the GitHub App from its manifest and keep its credentials.

GitHub's manifest flow, run from a small local web page:
https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest

1. ``GET /`` serves a form that POSTs the manifest (``app.yml`` with this deployment's
   webhook URL, name and redirect URL) to ``{web}/settings/apps/new?state=…`` or
   ``{web}/organizations/{org}/settings/apps/new?state=…``; a script submits it.
2. The person confirms on GitHub, which redirects the browser to the manifest's
   ``redirect_url`` — ``GET /callback?code=…&state=…`` here.  A callback whose
   ``state`` is not this run's random one is refused (CSRF) and nothing is exchanged.
3. ``POST {api}/app-manifests/{code}/conversions`` (no auth; the code works once,
   within an hour) answers the App's id, ``pem`` and ``webhook_secret``, which go to
   the ``.env`` file as ``GITHUB_APP_ID``, ``GITHUB_PRIVATE_KEY`` (one line, ``\\n``
   escaped) and ``GITHUB_WEBHOOK_SECRET`` (and ``GITHUB_API_URL`` for GHES): written
   atomically, mode 0600, other lines kept.  Secrets are never printed.  Then the
   server stops.

For GitHub Enterprise Server the web address is derived from ``GITHUB_API_URL``
(``https://HOST/api/v3`` → ``https://HOST``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import html
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import yaml
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.runtime.github.sansio import API_VERSION, USER_AGENT

__all__ = [
    "MANIFEST",
    "RegisteredApp",
    "SetupError",
    "SetupFlow",
    "build_manifest",
    "create_app",
    "exchange_code",
    "form_page",
    "load_manifest",
    "merge_env",
    "new_app_url",
    "web_url",
    "write_env_file",
]

# The App's manifest, identical to app.yml at the repository root (a test keeps them
# equal): the installed package has no app.yml to read.
MANIFEST: dict[str, Any] = {
    "name": "docgen",
    "url": "https://github.com/apps/docgen",
    "description": (
        "Writes the missing docstrings of the Python functions a pull request changes, in "
        "the repository's own style, proves each one changes nothing but the docstring, "
        "and offers them as one-click suggestions."
    ),
    "hook_attributes": {"url": "https://docgen.example.com/webhook", "active": True},
    "redirect_url": "https://docgen.example.com/setup/done",
    "public": False,
    "default_permissions": {
        "contents": "read",
        "metadata": "read",
        "pull_requests": "write",
        "checks": "write",
        "issues": "write",
    },
    "default_events": ["pull_request", "issue_comment", "check_run"],
}

ENV_APP_ID, ENV_PRIVATE_KEY, ENV_WEBHOOK_SECRET, ENV_API_URL = (
    "GITHUB_APP_ID",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_API_URL",
)
DEFAULT_API_URL = Settings.model_fields["github_api_url"].default
# GitHub refuses App names over 34 characters.
MAX_NAME_LENGTH = 34
CALLBACK_PATH = "/callback"
_CODE = re.compile(r"[A-Za-z0-9_-]{1,200}")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class SetupError(Exception):
    """Something the user can fix; one line, never a secret."""


# ----------------------------------------------------------------- pure helpers


def load_manifest(path: str | Path | None) -> dict[str, Any]:
    """The manifest in ``path`` (YAML or JSON), or the bundled copy of app.yml."""
    if path is None:
        return copy.deepcopy(MANIFEST)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SetupError(f"cannot read the manifest {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise SetupError(f"the manifest {path} is not valid YAML") from None
    if not isinstance(data, dict):
        raise SetupError(f"the manifest {path} must be a mapping (like app.yml)")
    return data


def build_manifest(
    base: Mapping[str, Any], *, name: str, webhook_url: str, redirect_url: str
) -> dict[str, Any]:
    """``base`` with this deployment's name, webhook URL and redirect URL."""
    manifest = copy.deepcopy(dict(base))
    manifest["name"] = name
    hook = dict(manifest.get("hook_attributes") or {})
    hook["url"] = webhook_url
    hook.setdefault("active", True)
    manifest["hook_attributes"] = hook
    manifest["redirect_url"] = redirect_url
    return manifest


def web_url(api_url: str) -> str:
    """GitHub's web address for a REST API base URL.

    ``https://api.github.com`` → ``https://github.com``; GHES ``https://HOST/api/v3``
    → ``https://HOST``; GHE.com ``https://api.SUB.ghe.com`` → ``https://SUB.ghe.com``.
    """
    parts = urlsplit(api_url.rstrip("/"))
    host, path = parts.netloc, parts.path
    if path.endswith("/api/v3"):
        path = path[: -len("/api/v3")]
    elif not path and host.startswith("api."):
        host = host[len("api.") :]
    return f"{parts.scheme}://{host}{path}"


def new_app_url(web: str, org: str | None, state: str) -> str:
    """Where the manifest form POSTs: the user's or the organization's new-App page."""
    if org:
        return f"{web}/organizations/{quote(org, safe='')}/settings/apps/new?state={state}"
    return f"{web}/settings/apps/new?state={state}"


def form_page(action: str, manifest: Mapping[str, Any]) -> str:
    """A page whose form POSTs ``manifest`` (field ``manifest``, JSON) to ``action``."""
    value = html.escape(json.dumps(manifest, ensure_ascii=False), quote=True)
    name = html.escape(str(manifest.get("name", "")), quote=True)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Register {name} on GitHub</title></head>
<body>
<form id="register" method="post" action="{html.escape(action, quote=True)}">
<input type="hidden" name="manifest" value="{value}">
<p>Registering the GitHub App <b>{name}</b> from its manifest: GitHub will ask you to
confirm, then send you back here.</p>
<p><button type="submit">Create the GitHub App on GitHub</button></p>
</form>
<script>document.getElementById("register").submit();</script>
</body>
</html>
"""


def _message_page(title: str, lines: list[str]) -> str:
    body = "\n".join(f"<p>{line}</p>" for line in lines)
    return (
        '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


# ------------------------------------------------------------------- .env file

_ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)", re.S)
# Values written without quotes: dotenv (pydantic-settings), `docker run --env-file` and
# `fly secrets import` all read them the same, byte for byte (no escape processing).
_BARE_VALUE = re.compile(r"[A-Za-z0-9_.,:/+=@%\\-]+(?: [A-Za-z0-9_.,:/+=@%\\-]+)*")


def _env_value(value: str) -> str:
    if _BARE_VALUE.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value and "\r" not in value:
        return f"'{value}'"
    raise SetupError("a value cannot be written to the .env file safely")


def _closes(text: str, quote_char: str) -> bool:
    """Whether ``text`` (after an opening quote) holds the closing quote."""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote_char == '"':
            escaped = True
        elif char == quote_char:
            return True
    return False


def _statements(text: str) -> list[tuple[str | None, str]]:
    """``text`` cut into (variable name or None, raw text) with quoted multi-line values whole."""
    lines = text.splitlines(keepends=True)
    out: list[tuple[str | None, str]] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        match = _ASSIGNMENT.fullmatch(raw.rstrip("\r\n"))
        if match is None or raw.lstrip().startswith("#"):
            out.append((None, raw))
            continue
        value = match[2]
        if value[:1] in ("'", '"') and not _closes(value[1:], value[0]):
            # A quoted value going on over several lines; never closed: just this line.
            end = next((j for j in range(i, len(lines)) if _closes(lines[j], value[0])), None)
            if end is not None:
                raw += "".join(lines[i : end + 1])
                i = end + 1
        out.append((match[1].upper(), raw))
    return out


def merge_env(existing: str, values: Mapping[str, str]) -> str:
    """``existing`` .env text with ``values`` set: their old statements replaced, others kept."""
    wanted = {key.upper(): key for key in values}
    written: set[str] = set()
    out: list[str] = []
    for key, raw in _statements(existing):
        if key is not None and key in wanted:
            if key not in written:  # the first occurrence is replaced; duplicates dropped
                out.append(f"{wanted[key]}={_env_value(values[wanted[key]])}\n")
                written.add(key)
            continue
        out.append(raw if raw.endswith("\n") else raw + "\n")
    rest = [key for key in wanted if key not in written]
    if rest:
        if out and out[-1].strip():
            out.append("\n")
        out.append("# The GitHub App, written by `docgen setup`\n")
        out += [f"{wanted[key]}={_env_value(values[wanted[key]])}\n" for key in rest]
    return "".join(out)


def check_env_writable(path: Path) -> None:
    """Fail now, before an App is registered whose credentials could not be kept."""
    directory = Path(os.path.realpath(path)).parent
    if not directory.is_dir():
        raise SetupError(f"the directory of --env-file does not exist: {directory}")
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SetupError(f"cannot write {path}")


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Set ``values`` in the .env file ``path``: atomically, mode 0600, other lines kept."""
    target = Path(os.path.realpath(path))  # write through a symlink, do not replace it
    try:
        existing = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    text = merge_env(existing, values)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            os.fchmod(fh.fileno(), 0o600)  # whatever the umask
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------- the exchange


@dataclass(frozen=True)
class RegisteredApp:
    """What the conversion answered.  ``repr`` leaves the secrets out."""

    id: int
    slug: str
    name: str
    html_url: str
    pem: str = field(repr=False)
    webhook_secret: str | None = field(repr=False)

    def env(self) -> dict[str, str]:
        """The .env values: the PEM on one line with ``\\n`` escaped (Settings restores it)."""
        pem = self.pem.replace("\r\n", "\n")
        values = {ENV_APP_ID: str(self.id), ENV_PRIVATE_KEY: pem.replace("\n", "\\n")}
        if self.webhook_secret:
            values[ENV_WEBHOOK_SECRET] = self.webhook_secret
        return values


async def exchange_code(
    api_url: str, code: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> RegisteredApp:
    """``POST /app-manifests/{code}/conversions``: the new App's id, key and secret.

    https://docs.github.com/en/rest/apps/apps#create-a-github-app-from-a-manifest
    """
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": USER_AGENT,
    }
    try:
        async with httpx.AsyncClient(transport=transport, timeout=30.0) as client:
            response = await client.post(url, headers=headers)
    except httpx.HTTPError as exc:
        raise SetupError(f"could not reach GITHUB_API_URL ({type(exc).__name__})") from None
    if response.status_code == 404:
        raise SetupError(
            "GitHub does not know this code (404): a code works once and for an hour. "
            "Open the setup page again to register anew."
        )
    if response.status_code != 201:
        raise SetupError(
            f"GitHub refused the code ({response.status_code}): {_github_message(response)}"
        )
    try:
        data = response.json()
        app = RegisteredApp(
            id=int(data["id"]),
            slug=str(data["slug"]),
            name=str(data.get("name") or data["slug"]),
            html_url=str(data.get("html_url") or ""),
            pem=str(data["pem"]),
            webhook_secret=data.get("webhook_secret") or None,
        )
    except (ValueError, KeyError, TypeError):
        raise SetupError("GitHub's answer lacks the App's id, slug or private key") from None
    if "PRIVATE KEY-----" not in app.pem or "\\" in app.pem:
        raise SetupError("GitHub's answer does not hold a PEM private key")
    return app


def _github_message(response: httpx.Response) -> str:
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or response.reason_phrase)[:200]


# ------------------------------------------------------------------ the server


@dataclass
class SetupFlow:
    """One run of the manifest flow: its state, where things go, and its outcome."""

    api_url: str
    manifest: dict[str, Any]
    env_file: Path
    org: str | None = None
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    transport: httpx.AsyncBaseTransport | None = None
    on_done: Callable[[], None] | None = None
    result: RegisteredApp | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    used: list[str] = field(default_factory=list, init=False, repr=False)

    def take_state(self, state: str) -> bool:
        """Whether ``state`` is this run's current one; if so it is used up now.

        Single use: whoever brings it back first (with a code that works or not) spends
        it, and the page offers a new one.  A replayed callback cannot exchange again.
        """
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            return False
        self.used.append(self.state)
        self.state = secrets.token_urlsafe(24)
        return True

    def was_used(self, state: str) -> bool:
        return any(hmac.compare_digest(state.encode(), old.encode()) for old in self.used)

    @property
    def web(self) -> str:
        return web_url(self.api_url)

    @property
    def action(self) -> str:
        return new_app_url(self.web, self.org, self.state)

    def env_values(self, app: RegisteredApp) -> dict[str, str]:
        """What goes to the .env: the App's values, and the API URL when it is not github.com's.

        An App registered on GHES only works against that server, so its .env says so.
        """
        values = app.env()
        if self.api_url.rstrip("/") != DEFAULT_API_URL:
            values[ENV_API_URL] = self.api_url.rstrip("/")
        return values

    def install_url(self, app: RegisteredApp) -> str:
        return f"{self.web}/apps/{quote(app.slug, safe='')}/installations/new"

    def finish(self) -> None:
        if self.on_done is not None:
            self.on_done()


_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the callback URL carries the code
    "X-Frame-Options": "DENY",
}


def host_name(header: str) -> str | None:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``),
    lower-cased and without brackets; None when it is not one of those."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        rest = header[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return header[1:end]
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def allowed_hosts(bound: str) -> tuple[str, ...]:
    """The ``Host`` values the setup page answers, for a server bound to ``bound``.

    The bound address itself and ``localhost``; a wildcard bind (``0.0.0.0``, ``::``)
    adds the loopback addresses, where the printed link points.  Never any other name:
    a page that answers whatever ``Host`` it is sent can be read by any web page the
    person visits, through DNS rebinding, and the state with it.
    """
    hosts = [bound, "localhost"]
    if bound in WILDCARD_HOSTS:
        hosts += ["127.0.0.1", "::1"]
    return tuple(dict.fromkeys(hosts))


def create_app(flow: SetupFlow, bound: str = "127.0.0.1") -> Starlette:
    """The setup page (``GET /``) and GitHub's redirect target (``GET /callback``).

    Both answer only requests whose ``Host`` names ``bound`` (the address the server
    listens on) or ``localhost`` (:func:`allowed_hosts`).
    """
    hosts = allowed_hosts(bound)

    def host_ok(request: Request) -> bool:
        name = host_name(request.headers.get("host", ""))
        return name is not None and any(_same_host(name, h) for h in hosts)

    async def page(request: Request) -> Response:
        if not host_ok(request):
            return _error(400, "Invalid host header.")
        if flow.result is not None:
            return _done_response(flow, flow.result)
        return HTMLResponse(form_page(flow.action, flow.manifest), headers=_HEADERS)

    async def callback(request: Request) -> Response:
        if not host_ok(request):
            return _error(400, "Invalid host header.")
        refused = _refuse_state(flow, request.query_params.get("state", ""))
        if refused is not None:
            return refused
        code = request.query_params.get("code", "")
        if not _CODE.fullmatch(code):
            return _error(400, "GitHub's answer carries no valid code.")
        return await _register(flow, code)

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route(CALLBACK_PATH, callback, methods=["GET"]),
        ],
    )


def _refuse_state(flow: SetupFlow, state: str) -> Response | None:
    """The answer to a callback whose ``state`` is not the current one; None if it is
    (and is now used up)."""
    if flow.take_state(state):
        return None
    if not flow.was_used(state):
        return _error(400, "This answer is not from this setup run (wrong state).")
    if flow.result is not None:  # the same answer again (a reload): no exchange
        return _done_response(flow, flow.result)
    return _error(400, "This setup link was used already. Open the setup page again to retry.")


async def _register(flow: SetupFlow, code: str) -> Response:
    """Exchange GitHub's ``code`` for the App's credentials and write them to the .env."""
    async with flow.lock:  # one exchange at a time; the code works once
        if flow.result is not None:
            return _done_response(flow, flow.result)
        try:
            app = await exchange_code(flow.api_url, code, transport=flow.transport)
        except SetupError as exc:
            return _error(502, str(exc))
        try:
            write_env_file(flow.env_file, flow.env_values(app))
        except (OSError, SetupError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return _error(
                500,
                f"The App {app.name} was registered (id {app.id}) but {flow.env_file} "
                f"could not be written ({reason}). Generate a private key and read the "
                f"webhook secret on the App's settings page: {app.html_url}",
            )
        flow.result = app
    return _done_response(flow, app, background=BackgroundTask(flow.finish))


def _error(status: int, message: str) -> Response:
    page = _message_page("docgen setup: not done", [html.escape(message)])
    return HTMLResponse(page, status_code=status, headers=_HEADERS)


def _done_response(
    flow: SetupFlow, app: RegisteredApp, background: BackgroundTask | None = None
) -> Response:
    link = html.escape(app.html_url, quote=True)
    install = html.escape(flow.install_url(app), quote=True)
    lines = [
        f'The GitHub App <a href="{link}">{html.escape(app.name)}</a> is registered (id {app.id}).',
        f"Its id, private key and webhook secret are in {html.escape(str(flow.env_file))} "
        "(mode 0600).",
        f'Next: <a href="{install}">install it</a> on your organization or repositories, '
        "and start <code>docgen serve</code> with that file.",
    ]
    page = _message_page("docgen setup: done", lines)
    return HTMLResponse(page, headers=_HEADERS, background=background)
