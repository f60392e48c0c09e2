"""The deploy files: Dockerfile, .dockerignore and fly.toml, checked without Docker.

No Docker engine is needed (or used): the Dockerfile is read instruction by
instruction, its two commands that matter are run for real (the script that lists the
dependencies for the cached layer, and the HEALTHCHECK against a local /healthz), the
build context is computed from .dockerignore as Docker does, and setuptools builds the
package from exactly that context to show the tokenizer data lands in it.  hadolint
runs when it is installed.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.cli.parser import build_parser
from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
TOKENIZER_FILES = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "bot/data/tiktoken").glob("*.tiktoken")
)


# ------------------------------------------------------------------ Dockerfile


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case
    args: str
    stage: int  # 0 = the first FROM


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions: comments dropped, continuation lines joined."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        name, _, args = text.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        out.append(Instruction(name, args.strip(), stage))
    return out


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def only(instructions: list[Instruction], name: str) -> Instruction:
    found = [i for i in instructions if i.name == name]
    assert len(found) == 1, f"expected one {name}, found {len(found)}"
    return found[0]


def arg_defaults() -> dict[str, str]:
    out = {}
    for i in dockerfile():
        if i.name == "ARG" and "=" in i.args:
            key, _, value = i.args.partition("=")
            out[key] = value.strip('"')
    return out


def test_runtime_image_is_slim_python_and_built_in_two_stages():
    froms = [i.args for i in dockerfile() if i.name == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    image = arg_defaults()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[1-9][.\d]*-slim(-\w+)?", image), image
    assert froms[1] == "${PYTHON_IMAGE}"  # the same Python as the venv was built with
    copied = only(final_stage(), "COPY").args
    assert copied == "--from=build /opt/docgen /opt/docgen"  # no compilers, no sources


def _classifier_pythons() -> list[tuple[int, int]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [
        re.fullmatch(r"Programming Language :: Python :: (\d+)\.(\d+)", c)
        for c in project["classifiers"]
    ]
    return sorted((int(m[1]), int(m[2])) for m in found if m)


def test_the_image_runs_the_newest_python_the_package_supports():
    # docgen parses the code under review with its own Python's ast: the newest one
    # reads the most syntax (tests/test_newer_syntax.py).
    versions = _classifier_pythons()
    oldest, newest = versions[0], versions[-1]
    assert versions == [(3, minor) for minor in range(oldest[1], newest[1] + 1)]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={oldest[0]}.{oldest[1]}"
    image = arg_defaults()["PYTHON_IMAGE"]
    assert image.startswith(f"python:{newest[0]}.{newest[1]}-slim"), image
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["target-version"] == f"py{oldest[0]}{oldest[1]}"


def test_ci_tests_the_oldest_and_the_newest_python():
    script = (ROOT / ".ci/run").read_text()
    [default] = re.findall(r'^CI_PYTHONS="\$\{CI_PYTHONS:-([\d. ]+)\}"$', script, re.M)
    versions = _classifier_pythons()
    assert default.split() == [f"{v[0]}.{v[1]}" for v in (versions[0], versions[-1])]
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci/run")]).returncode == 0
    assert os.access(ROOT / ".ci/run", os.X_OK)


def test_runs_as_a_numeric_non_root_user_with_a_writable_data_volume():
    stage = final_stage()
    user = only(stage, "USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and (not gid or int(gid) >= 1000), user
    names = [i.name for i in stage]
    assert names.index("USER") > names.index("COPY")  # installed as root, run as the user
    setup = " ".join(i.args for i in stage if i.name == "RUN")
    assert f"--uid {uid}" in setup and "chown docgen:docgen /data" in setup
    assert only(stage, "VOLUME").args == '["/data"]'
    env = " ".join(i.args for i in stage if i.name == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "DOCGEN_DATA_DIR=/data"):
        assert setting in env


def test_entrypoint_is_docgen_and_serve_by_default():
    stage = final_stage()
    entrypoint = json.loads(only(stage, "ENTRYPOINT").args)
    cmd = json.loads(only(stage, "CMD").args)
    assert entrypoint == ["docgen"] and cmd == ["serve"]
    assert only(stage, "EXPOSE").args == "8000"
    # `docker run IMAGE` and `docker run IMAGE worker` are commands docgen knows.
    for argv in (cmd, ["worker"]):
        assert build_parser().parse_args(argv).command == argv[0]


def test_dependencies_are_installed_before_the_sources_are_copied():
    build = [i for i in dockerfile() if i.stage == 0]
    copies = [i.args for i in build if i.name == "COPY"]
    assert copies[0] == "pyproject.toml ./"
    deps = next(n for n, i in enumerate(build) if i.name == "RUN" and "pip install -r" in i.args)
    sources = next(n for n, i in enumerate(build) if i.name == "COPY" and i.args.startswith("bot"))
    package = next(
        n for n, i in enumerate(build) if i.name == "RUN" and "pip install --no-deps" in i.args
    )
    assert deps < sources < package
    # Only pyproject.toml is copied before the dependency layer: a source edit keeps it cached.
    assert [i.args for i in build[:deps] if i.name == "COPY"] == ["pyproject.toml ./"]
    # The package step needs no index: no dependencies, no isolated build environment.
    assert "--no-build-isolation" in build[package].args
    # ... and it proves the encodings are installed (and hash-checked) in site-packages.
    assert "python -P -c" in build[package].args and "load_encoding" in build[package].args


def test_the_image_builds_encoding_check_runs_against_this_tree():
    """The package step's ``python -P -c`` check, run here: a name it imports that has
    moved (``load_encoding`` went from bot.docstrings.budget to bot.docstrings.tokens) would break the build."""
    step = next(i.args for i in dockerfile() if i.name == "RUN" and "python -P -c" in i.args)
    code = shlex.split(step.split("python -P -c", 1)[1])[0]
    assert "load_encoding" in code
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def _requirements_script() -> list[str]:
    run = next(i.args for i in dockerfile() if i.name == "RUN" and "tomllib" in i.args)
    command = run.split(" > ", 1)[0]
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-c"]
    return argv


@pytest.mark.parametrize("extras", ["", "test"], ids=["default", "extras"])
def test_dependency_list_script_reads_pyproject(tmp_path, extras):
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    argv = _requirements_script()
    env = {**os.environ, "EXTRAS": extras}
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    expected = project["build-system"]["requires"] + project["project"]["dependencies"]
    if extras:
        expected += project["project"]["optional-dependencies"][extras]
    assert result.stdout.splitlines() == expected


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # the name http.server calls
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Health.status = 200


def test_healthcheck_asks_healthz_on_port_with_python(health_server):
    stage = final_stage()
    check = only(stage, "HEALTHCHECK").args
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[0] == "python" and "curl" not in check and "wget" not in check
    port = str(health_server.server_address[1])
    env = {"PATH": os.environ["PATH"], "PORT": port}
    run = [sys.executable, *argv[1:]]
    assert subprocess.run(run, env=env, capture_output=True).returncode == 0
    _Health.status = 503  # the store is not writable
    assert subprocess.run(run, env=env, capture_output=True).returncode != 0


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing():
    result = subprocess.run(
        ["hadolint", "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------- build context and wheel


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        regex = ""
        i = 0
        while i < len(pattern):  # Docker's patterns: * and ? stop at /, ** crosses it
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex.strip("/") + r"\Z")))
    return rules


def in_build_context(path: str) -> bool:
    """Whether Docker sends ``path`` (relative, with /) to the builder.

    As Docker does: a rule matches a path or any of its parents; the last match wins.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in _dockerignore_rules():
        if any(regex.match(p) for p in prefixes):
            ignored = not negate
    return not ignored


def context_files() -> list[str]:
    """The files the Dockerfile copies from the context (pyproject.toml, README.md, bot/)."""
    sources = []
    for i in dockerfile():
        if i.name == "COPY" and not i.args.startswith("--from"):
            sources += i.args.split()[:-1]
    files = []
    for source in sources:
        path = ROOT / source
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p.relative_to(ROOT).as_posix() for p in found if "__pycache__" not in p.parts]
    return files


def test_build_context_holds_what_the_image_needs_and_no_secrets():
    needed = context_files()
    assert {"pyproject.toml", "README.md", "bot/cli/__init__.py", *TOKENIZER_FILES} <= set(needed)
    assert all(in_build_context(p) for p in needed), [p for p in needed if not in_build_context(p)]
    for outside in (
        ".env",
        "docgen.private-key.pem",
        ".git/config",
        "tests/conftest.py",
        "bench/README.md",
        "docgen-data/journal.sqlite3",
        "bot/cli/__pycache__/review.cpython-311.pyc",
    ):
        assert not in_build_context(outside), outside


def test_package_data_from_the_build_context_includes_the_tokenizer(tmp_path):
    # What `pip install .` puts in site-packages is setuptools' build_py output; build it
    # from a copy of exactly the build context (offline, in under a second).
    src = tmp_path / "src"
    for rel in context_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path / "lib"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "build_py",
            "--build-lib",
            str(out),
        ],
        cwd=src,
        capture_output=True,
        check=True,
    )
    for rel in TOKENIZER_FILES:
        assert (out / rel).read_bytes() == (ROOT / rel).read_bytes(), rel
    assert (out / "bot/runtime/setup.py").is_file()


# ------------------------------------------------------------------ fly.toml


def fly() -> dict:
    return tomllib.loads((ROOT / "fly.toml").read_text())


def _secret_settings() -> set[str]:
    return {
        name.upper()
        for name, info in Settings.model_fields.items()
        if SecretStr in typing.get_args(info.annotation) or info.annotation is SecretStr
    }


def test_fly_processes_are_web_and_worker_on_the_image_entrypoint():
    config = fly()
    entrypoint = json.loads(only(final_stage(), "ENTRYPOINT").args)
    processes = config["processes"]
    assert set(processes) == {"web", "worker"}
    commands = {name: entrypoint + shlex.split(cmd) for name, cmd in processes.items()}
    assert commands == {"web": ["docgen", "serve"], "worker": ["docgen", "worker"]}
    for argv in commands.values():
        build_parser().parse_args(argv[1:])
    assert config["build"]["dockerfile"] == "Dockerfile"
    assert config["primary_region"] and config["app"]


def test_fly_http_service_is_health_checked_and_limited():
    config = fly()
    service = config["http_service"]
    assert service["processes"] == ["web"]
    assert service["internal_port"] == int(config["env"]["PORT"]) == 8000
    assert service["auto_stop_machines"] in ("off", False)  # jobs run after the 202
    assert service["min_machines_running"] >= 1
    (check,) = service["checks"]
    assert check["path"] == "/healthz" and check.get("method", "GET") == "GET"
    limits = service["concurrency"]
    assert limits["type"] == "requests" and 0 < limits["soft_limit"] < limits["hard_limit"]


def test_fly_volume_holds_the_data_dir_of_the_web_process():
    config = fly()
    (mount,) = config["mounts"]
    assert mount["destination"] == config["env"]["DOCGEN_DATA_DIR"] == "/data"
    assert mount["processes"] == ["web"]
    assert only(final_stage(), "VOLUME").args == f'["{mount["destination"]}"]'


def test_fly_env_has_only_known_non_secret_settings_and_secrets_are_listed():
    config = fly()
    fields = {name.upper() for name in Settings.model_fields}
    secrets_ = _secret_settings()
    assert {"GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET", "OPENAI_API_KEY"} <= secrets_
    for key in config["env"]:
        assert key in fields, f"[env] {key} is not a docgen setting"
        assert key not in secrets_ | {"GITHUB_APP_ID"}, f"{key} is a secret: use fly secrets"
    text = (ROOT / "fly.toml").read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for name in secrets_ | {"GITHUB_APP_ID"}:
        assert re.search(rf"\b{name}\b", comments), f"list the secret {name} in fly.toml"
    for marker in ("PRIVATE KEY-----", "sk-", "ghs_", "redis://:"):  # no values, anywhere
        assert marker not in text
