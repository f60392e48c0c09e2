"""``docgen setup``: the manifest page, the callback's CSRF check, the code exchange, the .env.

The exchange runs against the fake GitHub on a loopback port (``FakeGitHub.serve``);
:meth:`FakeGitHub.register_manifest` plays the person pressing *Create GitHub App*.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import socket
import stat
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from starlette.testclient import TestClient

from bot.cli.sample import BASE, HEAD
from bot.cli.setup import run_setup
from bot.config import Settings
from bot.runtime.github.client import InstallationClients
from bot.runtime.github.connection import make_app_github
from bot.runtime.setup import (
    MANIFEST,
    RegisteredApp,
    SetupError,
    SetupFlow,
    build_manifest,
    create_app,
    host_name,
    load_manifest,
    merge_env,
    new_app_url,
    web_url,
    write_env_file,
)
from tests.conftest import OWNER, REPO
from tests.fake_github import FakeGitHub

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK = "https://docgen.acme.dev/webhook"
LOCAL = "http://127.0.0.1:8765"  # what the setup page answers (Host checked)
REDIRECT = "http://127.0.0.1:8765/callback"
ENV_KEYS = ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET")


@pytest.fixture(autouse=True)
def _no_github_env(monkeypatch):
    # Settings read the process environment too: keep a developer's App out of these tests.
    for name in list(os.environ):
        if name.upper().startswith("GITHUB_"):
            monkeypatch.delenv(name)


class Form(HTMLParser):
    """The setup page's form: its action, method and the ``manifest`` field."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.action = self.method = self.manifest = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action, self.method = attrs["action"], attrs["method"]
        if tag == "input" and attrs.get("name") == "manifest":
            self.manifest = attrs["value"]


def flow_for(api_url: str, env_file: Path, *, org: str | None = None, **kw) -> SetupFlow:
    manifest = build_manifest(
        MANIFEST, name="docgen-acme", webhook_url=WEBHOOK, redirect_url=REDIRECT
    )
    return SetupFlow(api_url=api_url, manifest=manifest, env_file=env_file, org=org, **kw)


def browser_registers(client: TestClient, fake: FakeGitHub) -> tuple[str, str]:
    """Load the page and do what GitHub does with its form: the (code, state) it redirects with."""
    form = Form(client.get("/").text)
    code = fake.register_manifest(form.manifest)
    return code, parse_qs(urlsplit(form.action).query)["state"][0]


# ------------------------------------------------------------------ manifest


def test_bundled_manifest_is_app_yml():
    app_yml = yaml.safe_load((ROOT / "app.yml").read_text(encoding="utf-8"))
    assert app_yml == MANIFEST
    assert load_manifest(None) == MANIFEST
    assert load_manifest(None) is not MANIFEST  # a copy: callers may change it
    assert load_manifest(ROOT / "app.yml") == MANIFEST


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a list\n", "must be a mapping"), ("name: [unclosed\n", "not valid YAML")],
    ids=["not-a-mapping", "bad-yaml"],
)
def test_bad_manifest_file_is_a_setup_error(tmp_path, text, message):
    path = tmp_path / "app.yml"
    path.write_text(text)
    with pytest.raises(SetupError, match=message):
        load_manifest(path)
    with pytest.raises(SetupError, match="cannot read"):
        load_manifest(tmp_path / "missing.yml")


def test_build_manifest_fills_in_the_deployment_and_keeps_the_rest():
    manifest = build_manifest(
        MANIFEST, name="docgen-acme", webhook_url=WEBHOOK, redirect_url=REDIRECT
    )
    assert manifest["name"] == "docgen-acme"
    assert manifest["hook_attributes"] == {"url": WEBHOOK, "active": True}
    assert manifest["redirect_url"] == REDIRECT
    for key in ("url", "description", "public", "default_permissions", "default_events"):
        assert manifest[key] == MANIFEST[key]
    assert MANIFEST["hook_attributes"]["url"] == "https://docgen.example.com/webhook"  # untouched


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://github.acme.corp/api/v3", "https://github.acme.corp"),
        ("https://github.acme.corp/api/v3/", "https://github.acme.corp"),
        ("https://api.octocorp.ghe.com", "https://octocorp.ghe.com"),
        ("http://127.0.0.1:9999", "http://127.0.0.1:9999"),
    ],
    ids=["github.com", "ghes", "ghes-trailing-slash", "ghe.com", "loopback"],
)
def test_web_url_from_api_url(api, web):
    assert web_url(api) == web


@pytest.mark.parametrize(
    ("api", "org", "action"),
    [
        ("https://api.github.com", None, "https://github.com/settings/apps/new"),
        (
            "https://api.github.com",
            "acme",
            "https://github.com/organizations/acme/settings/apps/new",
        ),
        (
            "https://github.acme.corp/api/v3",
            "platform",
            "https://github.acme.corp/organizations/platform/settings/apps/new",
        ),
        ("https://github.acme.corp/api/v3", None, "https://github.acme.corp/settings/apps/new"),
    ],
    ids=["user", "org", "ghes-org", "ghes-user"],
)
def test_page_posts_the_manifest_to_the_right_new_app_page(tmp_path, api, org, action):
    flow = flow_for(api, tmp_path / ".env", org=org)
    with TestClient(create_app(flow), base_url=LOCAL) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    form = Form(response.text)
    assert form.method == "post"
    assert form.action == f"{action}?state={flow.state}"
    assert len(flow.state) >= 32
    assert json.loads(form.manifest) == flow.manifest  # the JSON round-trips
    assert 'document.getElementById("register").submit()' in response.text


def test_manifest_json_survives_html_escaping(tmp_path):
    flow = flow_for("https://api.github.com", tmp_path / ".env")
    flow.manifest["description"] = 'Quotes " and \' and <b>tags</b> & "é" → ok'
    form = Form(create_and_get(flow))
    assert json.loads(form.manifest) == flow.manifest


def create_and_get(flow: SetupFlow) -> str:
    with TestClient(create_app(flow), base_url=LOCAL) as client:
        return client.get("/").text


def test_each_run_has_its_own_state(tmp_path):
    assert (
        flow_for("https://api.github.com", tmp_path).state
        != flow_for("https://api.github.com", tmp_path).state
    )
    assert new_app_url("https://github.com", "a b/c", "s") == (
        "https://github.com/organizations/a%20b%2Fc/settings/apps/new?state=s"
    )


# ------------------------------------------------------------------ callback


@pytest.mark.parametrize(
    "query",
    [{"code": "abc123", "state": "forged"}, {"code": "abc123"}, {"state": ""}],
    ids=["wrong-state", "no-state", "empty-state"],
)
def test_callback_with_a_wrong_state_is_refused_and_nothing_is_exchanged(
    fake_github, tmp_path, query
):
    env_file = tmp_path / ".env"
    flow = flow_for(
        "https://api.github.com", env_file, transport=httpx.ASGITransport(app=fake_github.app)
    )
    with TestClient(create_app(flow), base_url=LOCAL) as client:
        response = client.get("/callback", params=query)
    assert response.status_code == 400
    assert "wrong state" in response.text
    assert not env_file.exists()
    assert fake_github.calls == []
    assert flow.result is None


def test_callback_without_a_code_is_refused(tmp_path):
    flow = flow_for("https://api.github.com", tmp_path / ".env")
    with TestClient(create_app(flow), base_url=LOCAL) as client:
        response = client.get("/callback", params={"state": flow.state, "code": "../x"})
    assert response.status_code == 400
    assert not (tmp_path / ".env").exists()


# ------------------------------------------------------------------ full flow

EXISTING_ENV = """\
# docgen settings
OPENAI_API_KEY=sk-keep-me
export GITHUB_APP_ID=1
GITHUB_PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----
MIIEold
-----END RSA PRIVATE KEY-----"
DOCGEN_TOKEN_BUDGET=30000
github_app_id=2
LOG_LEVEL=DEBUG"""


def test_full_flow_writes_a_working_env_file(fake_github, make_pr, tmp_path):
    make_pr({"shop/inventory.py": BASE}, {"shop/inventory.py": HEAD})
    env_file = tmp_path / ".env"
    env_file.write_text(EXISTING_ENV)
    env_file.chmod(0o644)
    finished = []
    with fake_github.serve() as api_url:
        flow = flow_for(api_url, env_file, org="acme", on_done=lambda: finished.append(1))
        with TestClient(create_app(flow), base_url=LOCAL) as client:
            code, state = browser_registers(client, fake_github)
            response = client.get("/callback", params={"code": code, "state": state})
            again = client.get("/callback", params={"code": code, "state": state})
        assert response.status_code == 200, response.text
        assert again.status_code == 200  # already done: no second exchange
        assert len(fake_github.calls_to("manifests.convert")) == 1
        assert finished == [1]  # the server is told to stop once

        app = flow.result
        assert app is not None and app.slug == "docgen-acme"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        text = env_file.read_text()
        # Secrets stay out of the page; the next steps are in it.
        for secret in (app.pem, app.webhook_secret, app.pem.replace("\n", "\\n")):
            assert secret not in response.text
        assert f"{api_url}/apps/docgen-acme/installations/new" in response.text
        assert app.html_url in response.text

        # Our three lines, each once; every other line kept in its place.
        lines = text.splitlines()
        for key in ENV_KEYS:
            assert sum(line.startswith(f"{key}=") for line in lines) == 1
        assert "github_app_id=2" not in text and "MIIEold" not in text
        assert lines[:2] == ["# docgen settings", "OPENAI_API_KEY=sk-keep-me"]
        assert lines[2] == f"GITHUB_APP_ID={app.id}"
        assert lines[3].startswith("GITHUB_PRIVATE_KEY=-----BEGIN RSA PRIVATE KEY-----\\n")
        assert lines[4:7] == ["DOCGEN_TOKEN_BUDGET=30000", "LOG_LEVEL=DEBUG", ""]
        assert lines[-2:] == [
            f"GITHUB_WEBHOOK_SECRET={app.webhook_secret}",
            f"GITHUB_API_URL={api_url}",  # not github.com: the App lives on that server
        ]

        # Settings reads it back: the PEM restored from its one line.
        settings = Settings(_env_file=env_file, github_api_url=api_url)
        assert settings.github_app_id == app.id
        assert settings.private_key_pem() == app.pem
        assert settings.github_webhook_secret.get_secret_value() == app.webhook_secret
        assert settings.openai_api_key.get_secret_value() == "sk-keep-me"
        key = serialization.load_pem_private_key(settings.private_key_pem().encode(), None)
        assert key.public_key().public_numbers() == fake_github.public_key.public_numbers()

        # ... and the credentials work: App JWT → installation token → a PR read.
        async def read_pull():
            clients = InstallationClients(make_app_github(settings), write_interval=0.0)
            return await clients.api(1, OWNER, REPO).get_pull(1)

        assert asyncio.run(read_pull()).number == 1


def test_full_flow_on_ghes(rsa_private_key, tmp_path):
    fake = FakeGitHub(rsa_private_key.public_key(), prefix="/api/v3")
    env_file = tmp_path / "docgen.env"
    with fake.serve() as api_url:
        assert api_url.endswith("/api/v3")
        flow = flow_for(api_url, env_file, org="platform")
        with TestClient(create_app(flow), base_url=LOCAL) as client:
            form = Form(client.get("/").text)
            web = api_url.removesuffix("/api/v3")
            assert form.action.startswith(f"{web}/organizations/platform/settings/apps/new?")
            code = fake.register_manifest(form.manifest)
            response = client.get("/callback", params={"code": code, "state": flow.state})
    assert response.status_code == 200, response.text
    assert fake.calls_to("manifests.convert")[0].path == f"/api/v3/app-manifests/{code}/conversions"
    assert not fake.errors
    settings = Settings(_env_file=env_file)
    assert settings.github_app_id == flow.result.id
    assert settings.github_api_url == api_url  # `docgen serve` with this file talks to GHES
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_used_or_unknown_code_is_reported_and_a_new_one_still_works(fake_github, tmp_path):
    env_file = tmp_path / ".env"
    with fake_github.serve() as api_url:
        flow = flow_for(api_url, env_file)
        with TestClient(create_app(flow), base_url=LOCAL) as client:
            response = client.get("/callback", params={"code": "deadbeef", "state": flow.state})
            assert response.status_code == 502
            assert "works once and for an hour" in response.text
            assert not env_file.exists() and flow.result is None
            code, state = browser_registers(client, fake_github)
            assert client.get("/callback", params={"code": code, "state": state}).status_code == 200
    assert Settings(_env_file=env_file).github_app_id == flow.result.id


def test_github_unreachable_is_reported(tmp_path):
    flow = flow_for("http://127.0.0.1:9", tmp_path / ".env")  # nothing listens on port 9
    with TestClient(create_app(flow), base_url=LOCAL) as client:
        response = client.get("/callback", params={"code": "abc", "state": flow.state})
    assert response.status_code == 502
    assert "could not reach GITHUB_API_URL" in response.text
    assert not (tmp_path / ".env").exists()


# ------------------------------------------------------------------ .env file

APP = RegisteredApp(
    id=77,
    slug="docgen",
    name="docgen",
    html_url="https://github.com/apps/docgen",
    pem="-----BEGIN RSA PRIVATE KEY-----\nMIIEabc+/=\n-----END RSA PRIVATE KEY-----\n",
    webhook_secret="0123abcd",
)


def test_app_env_values_put_the_pem_on_one_line():
    values = APP.env()
    assert values == {
        "GITHUB_APP_ID": "77",
        "GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\\nMIIEabc+/=\\n"
        "-----END RSA PRIVATE KEY-----\\n",
        "GITHUB_WEBHOOK_SECRET": "0123abcd",
    }
    assert "MIIE" not in repr(APP) and "0123abcd" not in repr(APP)


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ("", "# The GitHub App, written by `docgen setup`\nA=1\nB=two words\n"),
        ("X=1", "X=1\n\n# The GitHub App, written by `docgen setup`\nA=1\nB=two words\n"),
        (
            "A=0\r\nX=1\r\n",
            "A=1\nX=1\r\n\n# The GitHub App, written by `docgen setup`\nB=two words\n",
        ),
        ("export a = old # c\nB='x'\nb=dup\n", "A=1\nB=two words\n"),
        (
            '# A=comment\nB="multi\nline \\" value"\nY=2\n',
            "# A=comment\nB=two words\nY=2\n\n# The GitHub App, written by `docgen setup`\nA=1\n",
        ),
        (
            "Z='open\nA=inside\n'\n",
            "Z='open\nA=inside\n'\n\n"
            "# The GitHub App, written by `docgen setup`\nA=1\nB=two words\n",
        ),
        (
            'A="never closed\nKEEP=1\n',
            "A=1\nKEEP=1\n\n# The GitHub App, written by `docgen setup`\nB=two words\n",
        ),
    ],
    ids=[
        "new",
        "append",
        "crlf",
        "export-and-duplicates",
        "multiline-double",
        "inside-quotes",
        "never-closed",
    ],
)
def test_merge_env(existing, expected):
    assert merge_env(existing, {"A": "1", "B": "two words"}) == expected


def test_merge_env_quotes_what_cannot_stay_bare():
    assert merge_env("", {"A": "has #hash"}).endswith("A='has #hash'\n")
    with pytest.raises(SetupError):
        merge_env("", {"A": "it's\nnot"})


def test_env_file_is_0600_whatever_the_umask_and_symlinks_are_kept(tmp_path):
    real = tmp_path / "secrets" / "docgen.env"
    real.parent.mkdir()
    real.write_text("KEEP=1\n")
    real.chmod(0o666)
    link = tmp_path / ".env"
    link.symlink_to(real)
    old = os.umask(0)
    try:
        write_env_file(link, APP.env())
    finally:
        os.umask(old)
    assert link.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert real.read_text().startswith("KEEP=1\n")
    assert [p.name for p in real.parent.iterdir()] == ["docgen.env"]  # no temporary left
    settings = Settings(_env_file=link)
    assert settings.private_key_pem() == APP.pem


# ------------------------------------------------------------------ the command


def setup_args(tmp_path: Path, **kw) -> argparse.Namespace:
    values = {
        "org": None,
        "webhook_url": WEBHOOK,
        "name": "docgen",
        "host": "127.0.0.1",
        "port": 0,
        "env_file": str(tmp_path / ".env"),
        "manifest": None,
        "allow_remote": False,
    }
    values.update(kw)
    return argparse.Namespace(**values)


@pytest.mark.timeout(60)
def test_run_setup_serves_until_the_app_is_registered(fake_github, tmp_path):
    out = io.StringIO()
    with fake_github.serve() as api_url:
        settings = Settings(github_api_url=api_url)
        codes: list[int] = []
        thread = threading.Thread(
            target=lambda: codes.append(
                run_setup(setup_args(tmp_path, org="acme"), settings, out=out)
            )
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not (match := re.search(r"Open (http://127\.0\.0\.1:\d+/) ", out.getvalue())):
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.02)
        with httpx.Client(base_url=match[1]) as browser:
            form = Form(browser.get("/").text)
            redirect = yaml.safe_load(form.manifest)["redirect_url"]
            assert redirect == f"{match[1]}callback"
            assert browser.get("/", headers={"Host": "evil.example"}).status_code == 400
            code = fake_github.register_manifest(form.manifest)
            state = parse_qs(urlsplit(form.action).query)["state"][0]
            assert browser.get(redirect, params={"code": code, "state": state}).status_code == 200
        thread.join(timeout=15)
    assert not thread.is_alive() and codes == [0]
    printed = out.getvalue()
    assert "https://github.com/apps/docgen" in printed
    assert "/apps/docgen/installations/new" in printed
    settings = Settings(_env_file=tmp_path / ".env")
    assert settings.github_app_id is not None
    key_body = settings.private_key_pem().splitlines()[1:-1]
    assert key_body and not any(line in printed for line in key_body)
    assert settings.github_webhook_secret.get_secret_value() not in printed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook_url": "docgen.acme.dev/webhook"}, "--webhook-url must be an http(s) URL"),
        ({"name": "x" * 35}, "--name must be 1 to 34 characters"),
        ({"env_file": "/nonexistent-dir/.env"}, "does not exist"),
        ({"manifest": "/nonexistent-dir/app.yml"}, "cannot read the manifest"),
    ],
    ids=["webhook-url", "name", "env-dir", "manifest"],
)
def test_run_setup_refuses_bad_arguments_before_listening(tmp_path, capsys, change, message):
    code = run_setup(setup_args(tmp_path, **change), Settings(), out=io.StringIO())
    assert code == 2
    assert message in capsys.readouterr().err


def test_env_values_name_the_api_only_when_it_is_not_github_com(tmp_path):
    assert "GITHUB_API_URL" not in flow_for("https://api.github.com", tmp_path).env_values(APP)
    ghes = flow_for("https://github.acme.corp/api/v3/", tmp_path).env_values(APP)
    assert ghes["GITHUB_API_URL"] == "https://github.acme.corp/api/v3"


# ------------------------------------------------- who may reach the page (issue 10)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8765", "::1"),
        ("[::1]", "::1"),
        ("evil.example:80", "evil.example"),
        ("[::1]x", None),
        ("[::1", None),
        ("host:port", None),
        ("", None),
    ],
)
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("bound", "good", "bad"),
    [
        ("127.0.0.1", ["127.0.0.1:8765", "localhost:8765"], ["evil.example", "[::1]:8765"]),
        ("0.0.0.0", ["127.0.0.1:8765", "localhost", "[::1]:1"], ["evil.example", "10.0.0.5:8765"]),
        ("::", ["[::1]:8765", "localhost:8765", "127.0.0.1"], ["evil.example", "[fe80::1]:8765"]),
        ("::1", ["[::1]:8765", "[0:0::1]:8765", "localhost"], ["evil.example", "127.0.0.2"]),
        ("192.168.7.9", ["192.168.7.9:8765", "localhost"], ["evil.example", "192.168.7.10"]),
    ],
    ids=["v4-loopback", "v4-wildcard", "v6-wildcard", "v6-loopback", "lan-address"],
)
def test_the_page_answers_only_its_own_host_whatever_the_bind(tmp_path, bound, good, bad):
    """A wildcard or IPv6 bind used to turn the Host check off: any page the person
    visited could read the state through DNS rebinding and finish the flow itself."""
    flow = flow_for("https://api.github.com", tmp_path / ".env")
    with TestClient(create_app(flow, bound), base_url=LOCAL) as client:
        for host in good:
            assert client.get("/", headers={"Host": host}).status_code == 200, host
        for host in bad:
            r = client.get("/", headers={"Host": host})
            assert r.status_code == 400 and flow.state not in r.text, host
            r = client.get(
                "/callback", params={"state": flow.state, "code": "c"}, headers={"Host": host}
            )
            assert r.status_code == 400, host
    assert flow.used == []  # the refused callbacks did not spend the state


def test_the_state_is_single_use(fake_github, tmp_path):
    env_file = tmp_path / ".env"
    with fake_github.serve() as api_url:
        flow = flow_for(api_url, env_file)
        with TestClient(create_app(flow), base_url=LOCAL) as client:
            first_state = flow.state
            bad = client.get("/callback", params={"code": "deadbeef", "state": first_state})
            assert bad.status_code == 502  # GitHub does not know the code
            again = client.get("/callback", params={"code": "deadbeef", "state": first_state})
            assert again.status_code == 400 and "used already" in again.text
            # An attacker's own code with the spent state is refused before any exchange.
            code = fake_github.register_manifest(Form(client.get("/").text).manifest)
            replay = client.get("/callback", params={"code": code, "state": first_state})
            assert replay.status_code == 400
            assert len(fake_github.calls_to("manifests.convert")) == 1
            # The person starts over from the page: a fresh state, and it works once.
            code, state = browser_registers(client, fake_github)
            assert state != first_state
            assert client.get("/callback", params={"code": code, "state": state}).status_code == 200
            reload = client.get("/callback", params={"code": code, "state": state})
            assert reload.status_code == 200 and "is registered" in reload.text
    assert len(fake_github.calls_to("manifests.convert")) == 2  # the reload exchanged nothing
    assert Settings(_env_file=env_file).github_app_id == flow.result.id


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_run_setup_refuses_a_bind_beyond_this_machine_without_the_flag(tmp_path, capsys, host):
    if ":" in host and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    code = run_setup(setup_args(tmp_path, host=host), Settings(), out=io.StringIO())
    assert code == 2
    err = capsys.readouterr().err
    assert f"--host {host} would serve the setup page beyond this machine" in err
    assert "--allow-remote" in err


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("host", "allow_remote", "origin"),
    [("::1", False, r"http://\[::1\]:\d+/"), ("0.0.0.0", True, r"http://127\.0\.0\.1:\d+/")],
    ids=["ipv6-loopback", "wildcard-allowed"],
)
def test_run_setup_checks_host_on_a_real_server(fake_github, tmp_path, host, allow_remote, origin):
    if ":" in host and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    out = io.StringIO()
    with fake_github.serve() as api_url:
        args = setup_args(tmp_path, host=host, allow_remote=allow_remote)
        codes: list[int] = []
        thread = threading.Thread(
            target=lambda: codes.append(run_setup(args, Settings(github_api_url=api_url), out=out))
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not (match := re.search(rf"Open ({origin}) ", out.getvalue())):
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.02)
        with httpx.Client(base_url=match[1]) as browser:
            stolen = browser.get("/", headers={"Host": "rebound.evil.example"})
            assert stolen.status_code == 400 and "state=" not in stolen.text
            form = Form(browser.get("/").text)
            code = fake_github.register_manifest(form.manifest)
            state = parse_qs(urlsplit(form.action).query)["state"][0]
            redirect = yaml.safe_load(form.manifest)["redirect_url"]
            assert browser.get(redirect, params={"code": code, "state": state}).status_code == 200
        thread.join(timeout=15)
    assert not thread.is_alive() and codes == [0]
