"""Settings: the process's (environment) and the repository's (``.github/docgen.yml``).

One :class:`Settings` object serves ``serve``, ``worker`` and ``review`` alike: the same
environment variables mean the same thing everywhere and CLI flags override them.
:class:`RepoConfig` is the per-repository part; a broken file never crashes anything,
it becomes messages for the summary and the defaults are used.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.docstrings.models import Style

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TOKEN_BUDGET = 20_000
DEFAULT_FORK_TOKEN_BUDGET = 5_000  # a fork's author is not someone the org pays for


class StartupError(Exception):
    """A setting is missing or invalid: one line, naming the variable (never its value)."""


class Price(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(frozen=True)

    prompt: float
    completion: float


# Public list prices (USD per 1M tokens), https://openai.com/api/pricing/ .
# Longest matching prefix wins, so dated snapshots ("gpt-4o-2024-08-06") are priced too.
# Each row: (prompt, completion) for a model-name prefix.
DEFAULT_PRICES: dict[str, Price] = {
    name: Price(prompt=prompt, completion=completion)
    for name, (prompt, completion) in {
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4o": (2.50, 10.00),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4-turbo": (10.00, 30.00),
        "gpt-4": (30.00, 60.00),
        "gpt-3.5-turbo": (0.50, 1.50),
        "o4-mini": (1.10, 4.40),
        "o3-mini": (1.10, 4.40),
        "o3": (2.00, 8.00),
        "offline": (0.0, 0.0),
    }.items()
}


def price_for(model: str, prices: dict[str, Price] | None = None) -> Price | None:
    """The price of ``model`` by longest matching prefix, or None when unknown."""
    table = DEFAULT_PRICES if prices is None else prices
    best = None
    for name in table:
        if model.startswith(name) and (best is None or len(name) > len(best)):
            best = name
    return table[best] if best is not None else None


class Settings(BaseSettings):
    """Process settings, from the environment (and a ``.env`` file if present).

    Secrets are ``SecretStr``: they print as ``**********`` in reprs and logs.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    docgen_model: str = DEFAULT_MODEL
    azure_openai_endpoint: str | None = None
    azure_openai_api_key: SecretStr | None = None
    azure_openai_deployment: str | None = None
    openai_api_version: str = "2024-10-21"
    docgen_token_budget: int = Field(default=DEFAULT_TOKEN_BUDGET, gt=0)
    docgen_encoding: str | None = None  # force a tiktoken encoding (o200k_base / cl100k_base)
    docgen_data_dir: Path | None = None
    docgen_timeout: float = Field(default=60.0, gt=0)  # seconds per LLM call
    docgen_max_retries: int = Field(default=3, ge=0, le=10)
    docgen_provider: Literal["auto", "openai", "azure", "offline"] = "auto"
    # How the answer's JSON shape is asked for (bot.docstrings.llm.schema.RESPONSE_MODES); auto
    # probes the server on the first call and falls back, best first.
    docgen_response_format: Literal["auto", "json_schema", "json_object", "tools", "text"] = "auto"
    # Model calls in flight at once, per process; halved on timeouts down to 1.  A
    # local server (llama.cpp, Ollama) answers one at a time: set 1.
    docgen_llm_concurrency: int = Field(default=4, ge=1, le=64)
    log_level: str = "INFO"

    # The GitHub App (``docgen serve`` / ``docgen worker``).
    github_app_id: int | None = None
    github_private_key: SecretStr | None = None  # PEM text
    github_private_key_path: Path | None = None
    github_webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"  # GHES: https://HOST/api/v3 (no trailing /)
    sentry_dsn: SecretStr | None = None
    port: int = Field(default=8000, ge=1, le=65535)
    docgen_workers: int = Field(default=2, ge=1, le=64)  # in-process job workers
    # ``docgen serve``: web processes sharing the port (bot.runtime.processes).  1: one process
    # serves and runs the jobs; more: the jobs run in the supervising process.
    docgen_web_processes: int = Field(default=1, ge=1, le=64)
    # Niceness of the job work (``docgen worker``; the jobs thread of a multi-process
    # ``docgen serve``): on a machine shared with web processes, acknowledgements go
    # first; alone on a machine it changes nothing.  0 leaves the priority alone.
    docgen_jobs_nice: int = Field(default=10, ge=0, le=19)
    docgen_run_drafts: bool = False
    docgen_skip_forks: bool = False
    docgen_reply_to_strangers: bool = False  # one polite reply to /docgen from non-members
    docgen_job_timeout: float = Field(default=900.0, gt=0)  # seconds one job run may take
    # Bytes of file content one run downloads, all files together (each file is also
    # held to ``max_file_bytes`` of the repo config): a PR cannot make a worker read
    # or hold more.  Files past it are named in the summary, not reviewed.
    docgen_max_run_bytes: int = Field(default=16_000_000, gt=0)
    # Bytes of the fetched files parsed for the style sample (about a second per MB):
    # files past it are left out of the sample, and named.
    docgen_style_sample_bytes: int = Field(default=1_000_000, ge=0)

    # Scale-out: with REDIS_URL, ``docgen serve`` only enqueues and ``docgen worker``
    # processes run the jobs (bot.runtime.queue.redis_store).  Unset: the embedded SQLite store.
    redis_url: SecretStr | None = None  # a secret: the URL may carry a password
    docgen_redis_prefix: str = Field(default="docgen", pattern=r"^[A-Za-z0-9_.-]+$")
    # How long a killed worker's job waits before another worker runs it; a live worker
    # renews its lease every third of this.
    docgen_job_lease: float = Field(default=30.0, ge=1, le=600)
    # ``docgen worker`` serves Prometheus ``/metrics`` on this port (all interfaces);
    # 0 turns it off.  The web process has ``/metrics`` on its own port already.
    docgen_metrics_port: int = Field(default=8001, ge=0, le=65535)
    # What an unverified POST /webhook may cost (bot.runtime.intake): one body at most GitHub's
    # 25 MB payload cap, all bodies being read or held by one web process at most
    # this much together (503 beyond), and each body in full within this many seconds
    # (408; GitHub gives up after 10 s anyway).
    docgen_max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, le=25 * 1024 * 1024)
    docgen_body_bytes_in_flight: int = Field(default=64 * 1024 * 1024, ge=1024)
    docgen_body_timeout: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _one_body_fits_in_flight(self) -> Settings:
        if self.docgen_body_bytes_in_flight < self.docgen_max_body_bytes:
            raise ValueError(
                "DOCGEN_BODY_BYTES_IN_FLIGHT must be at least DOCGEN_MAX_BODY_BYTES "
                "(else the largest delivery could never be read)"
            )
        return self

    # What an installation may spend (bot.docstrings.quota): tokens per UTC day / month across
    # all its repositories and PRs, reservations included; 0 is no cap.
    docgen_installation_tokens_per_day: int = Field(default=0, ge=0)
    docgen_installation_tokens_per_month: int = Field(default=0, ge=0)
    # PRs from forks: a lower per-PR budget (never above DOCGEN_TOKEN_BUDGET), and
    # whether they run without a `/docgen` from a member.
    docgen_fork_token_budget: int = Field(default=DEFAULT_FORK_TOKEN_BUDGET, gt=0)
    docgen_fork_auto_run: bool = True

    @field_validator("redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("github_api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def private_key_pem(self) -> str | None:
        """The App's private key from ``GITHUB_PRIVATE_KEY`` or the file it names."""
        if self.github_private_key is not None:
            # Env vars often carry the PEM with literal \n (one line): restore them.
            return self.github_private_key.get_secret_value().replace("\\n", "\n")
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None

    def provider_kind(self) -> str:
        """Which provider these settings select: azure, openai or offline."""
        if self.docgen_provider != "auto":
            return self.docgen_provider
        if self.azure_openai_endpoint and self.azure_openai_api_key:
            return "azure"
        if self.openai_api_key:
            return "openai"
        return "offline"

    def model_name(self) -> str:
        """The model name used for pricing, caching and token counting."""
        kind = self.provider_kind()
        if kind == "offline":
            return "offline"
        if kind == "azure" and self.azure_openai_deployment and not self.docgen_model:
            return self.azure_openai_deployment
        return self.docgen_model


class RepoConfig(BaseModel):
    """The repository's ``.github/docgen.yml``. Unknown keys are errors (typos matter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Literal["auto", "google", "numpy", "sphinx", "plain"] = "auto"
    budget: int | None = Field(default=None, gt=0)  # tokens per PR; None: the process's
    include: tuple[str, ...] = ("*.py",)
    exclude: tuple[str, ...] = ()
    skip_private: bool = True
    skip_dunder: bool = True
    skip_tests: bool = True
    skip_trivial: bool = True
    update_stale: bool = True
    auto_run: bool = True
    coverage_threshold: float | None = Field(default=None, ge=0, le=100)
    language: str = "English"
    max_file_bytes: int = Field(default=1_000_000, gt=0)
    max_functions: int = Field(default=100, gt=0)
    # PRs from forks (bot.docstrings.quota): may lower DOCGEN_FORK_TOKEN_BUDGET, or require
    # `/docgen`; never more than the admin's settings allow.
    fork_budget: int | None = Field(default=None, gt=0)
    fork_auto_run: bool = True

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    def forced_style(self) -> Style | None:
        return None if self.style == "auto" else Style(self.style)

    def wants(self, path: str) -> bool:
        """Whether ``path`` is in scope under include/exclude (fnmatch on the full path).

        ``*`` matches across ``/`` as in fnmatch, so ``*.py`` means every Python file
        and ``tests/*`` everything under ``tests/``.
        """
        if not any(fnmatch.fnmatchcase(path, pat) for pat in self.include):
            return False
        return not any(fnmatch.fnmatchcase(path, pat) for pat in self.exclude)


@dataclass(frozen=True)
class LoadedRepoConfig:
    config: RepoConfig
    errors: tuple[str, ...] = ()
    source: str = "defaults"


def load_repo_config(
    text: str | bytes | None, source: str = ".github/docgen.yml"
) -> LoadedRepoConfig:
    """Parse a ``docgen.yml``; anything wrong yields messages and the defaults.

    Never raises on bad input: the messages go to the summary so the maintainer can
    fix the file, and the run goes on with defaults.
    """
    if text is None:
        return LoadedRepoConfig(RepoConfig())
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return LoadedRepoConfig(
            RepoConfig(), (f"{source}: invalid YAML{where}; using defaults",), "defaults"
        )
    if data is None:
        return LoadedRepoConfig(RepoConfig(), (), source)
    if not isinstance(data, dict):
        return LoadedRepoConfig(
            RepoConfig(), (f"{source}: expected a mapping at the top level; using defaults",)
        )
    try:
        return LoadedRepoConfig(RepoConfig.model_validate(data), (), source)
    except ValidationError as exc:
        errors = []
        good = dict(data)
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top)"
            field_name = str(err["loc"][0]) if err["loc"] else None
            used = _fallback(field_name)
            errors.append(f"{source}: {loc}: {err['msg']}{used}")
            if field_name is not None:
                good.pop(field_name, None)
        try:
            config = RepoConfig.model_validate(good)
        except ValidationError:  # pragma: no cover - dropping every bad key always validates
            config = RepoConfig()
        return LoadedRepoConfig(config, tuple(errors), source)


# What a None default stands for, in words a maintainer can act on (issue 13: "using
# default None" said nothing).
_NONE_MEANS = {
    "budget": f"DOCGEN_TOKEN_BUDGET ({DEFAULT_TOKEN_BUDGET:,} tokens unless the server sets it)",
    "fork_budget": (
        f"DOCGEN_FORK_TOKEN_BUDGET ({DEFAULT_FORK_TOKEN_BUDGET:,} tokens unless the server sets it)"
    ),
    "coverage_threshold": "no threshold",
}


def _fallback(field_name: str | None) -> str:
    """What the run uses instead of a bad value of ``field_name``, for its message."""
    info = RepoConfig.model_fields.get(field_name) if field_name else None
    if info is None:
        return "; ignored"
    if info.default is None:
        return f"; using the default: {_NONE_MEANS.get(field_name, 'none')}"
    return f"; using default {info.default!r}"


def read_repo_config_file(root: Path) -> LoadedRepoConfig:
    """Load ``.github/docgen.yml`` (or ``.yaml``) from a checkout, if present."""
    for name in ("docgen.yml", "docgen.yaml"):
        path = root / ".github" / name
        if path.is_file():
            return load_repo_config(path.read_bytes(), f".github/{name}")
    return LoadedRepoConfig(RepoConfig())
