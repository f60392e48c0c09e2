"""``docgen setup``: check the arguments, serve the setup page, report what was written.

The manifest flow itself (the page, GitHub's callback, the exchange, the .env file) is
:mod:`bot.runtime.setup`.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from bot.config import Settings
from bot.runtime.setup import (
    CALLBACK_PATH,
    ENV_WEBHOOK_SECRET,
    MAX_NAME_LENGTH,
    WILDCARD_HOSTS,
    SetupError,
    SetupFlow,
    build_manifest,
    check_env_writable,
    create_app,
    load_manifest,
)


def _url_host(host: str) -> str:
    if host in WILDCARD_HOSTS:
        return "[::1]" if host == "::" else "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _check_webhook_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SetupError("--webhook-url must be an http(s) URL, like https://HOST/webhook")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _check_bind(bound: str, allow_remote: bool) -> None:
    """Refuse to serve the page beyond this machine unless asked to."""
    if _is_loopback(bound) or allow_remote:
        return
    raise SetupError(
        f"--host {bound} would serve the setup page beyond this machine: whoever reaches "
        "it first can register an App with their own GitHub account and have its "
        "credentials written to your .env. Use 127.0.0.1 (or ::1), or pass "
        "--allow-remote if the network is yours alone."
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SetupError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    return sock


def run_setup(
    args: argparse.Namespace,
    settings: Settings,
    *,
    out: TextIO | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """``docgen setup``: serve the page, wait for GitHub's code, write the .env; exit code."""
    out = out or sys.stdout
    try:
        flow, sock = _prepare(args, settings, transport)
    except SetupError as exc:
        print(f"docgen: {exc}", file=sys.stderr)
        return 2
    address = sock.getsockname()
    origin = f"http://{_url_host(address[0])}:{address[1]}"
    owner = f"the organization {args.org}" if args.org else "your user account"
    if not urlsplit(args.webhook_url).path.endswith("/webhook"):
        out.write("Note: `docgen serve` answers webhooks at /webhook.\n")
    out.write(
        f"Open {origin}/ in a browser signed in to {flow.web}: it registers the GitHub App "
        f"{flow.manifest['name']!r} under {owner} (webhooks to {args.webhook_url}).\n"
        "Waiting for GitHub's answer (Ctrl-C to stop) ...\n"
    )
    out.flush()
    _serve_page(flow, sock)
    return _report_outcome(flow, out)


def _prepare(
    args: argparse.Namespace, settings: Settings, transport: httpx.AsyncBaseTransport | None
) -> tuple[SetupFlow, socket.socket]:
    """Check the arguments, bind the page's socket and start the flow; SetupError if not."""
    name = args.name.strip()
    if not 0 < len(name) <= MAX_NAME_LENGTH:
        raise SetupError(f"--name must be 1 to {MAX_NAME_LENGTH} characters")
    _check_webhook_url(args.webhook_url)
    env_file = Path(args.env_file)
    check_env_writable(env_file)
    base = load_manifest(args.manifest)
    sock = _bind(args.host, args.port)
    bound, port = sock.getsockname()[:2]  # "localhost" → 127.0.0.1: the address, not the name
    try:
        _check_bind(bound, bool(getattr(args, "allow_remote", False)))
    except SetupError:
        sock.close()
        raise
    origin = f"http://{_url_host(bound)}:{port}"
    flow = SetupFlow(
        api_url=settings.github_api_url,
        manifest=build_manifest(
            base, name=name, webhook_url=args.webhook_url, redirect_url=origin + CALLBACK_PATH
        ),
        env_file=env_file,
        org=args.org,
        transport=transport,
    )
    return flow, sock


def _serve_page(flow: SetupFlow, sock: socket.socket) -> None:
    """Serve the setup page on ``sock`` until the flow is done or Ctrl-C."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            # Host checked against the bound address: no DNS rebinding.
            create_app(flow, sock.getsockname()[0]),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
    )

    def done() -> None:
        server.should_exit = True

    flow.on_done = done
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on
        pass
    finally:
        sock.close()


def _report_outcome(flow: SetupFlow, out: TextIO) -> int:
    """Say what was registered and written (or that nothing was); the exit code."""
    app = flow.result
    if app is None:
        out.write(f"Stopped: no App was registered and {flow.env_file} is unchanged.\n")
        return 130
    out.write(
        f"Registered the GitHub App {app.name} (id {app.id}): {app.html_url}\n"
        f"Wrote {', '.join(flow.env_values(app))} to {flow.env_file} (mode 0600).\n"
        f"Install it: {flow.install_url(app)}\n"
    )
    if not app.webhook_secret:
        out.write(
            f"GitHub sent no webhook secret: set one on the App's page and add it to "
            f"{flow.env_file} as {ENV_WEBHOOK_SECRET}.\n"
        )
    return 0
