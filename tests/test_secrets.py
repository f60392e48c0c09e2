"""One list of secret values for the logs and Sentry (invariant 9).

The oracle is the Settings class itself: every field *declared* ``SecretStr`` (read
from its annotations, not from ``bot.runtime.secrets``) must be in the list, so a secret field
added later cannot be forgotten by the redactor.
"""

from __future__ import annotations

import typing

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.runtime.secrets import secret_values


@pytest.fixture(autouse=True)
def no_settings_from_the_environment(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def declared_secret_fields() -> list[str]:
    """Fields of Settings whose annotation is SecretStr or SecretStr | None."""
    hints = typing.get_type_hints(Settings)
    return [
        name
        for name in Settings.model_fields
        if hints[name] is SecretStr or SecretStr in typing.get_args(hints[name])
    ]


def test_the_oracle_finds_the_secret_fields_we_know_of():
    # Guards the oracle: if it found nothing, the test below would pass vacuously.
    known = {"github_webhook_secret", "github_private_key", "openai_api_key", "sentry_dsn"}
    assert known <= set(declared_secret_fields())


def test_every_secretstr_field_of_settings_is_listed():
    fields = declared_secret_fields()
    values = {name: f"value-of-{name}-7f3a9c" for name in fields}
    values["redis_url"] = "redis://:pw-9d8c7b6a@cache.internal:6379/0"
    listed = secret_values(Settings(_env_file=None, **values))
    missing = [name for name in fields if values[name] not in listed]
    assert missing == []


def test_parts_that_travel_alone_are_listed_too(tmp_path):
    body = ["MIIEowIBAAKCAQEAx1y2z3", "b4c5d6e7f8g9h0i1j2k3"]
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----\n"
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    settings = Settings(
        _env_file=None,
        github_private_key_path=key_file,
        redis_url="redis://user:s3cret-pass-word@redis.internal:6379",
    )
    listed = secret_values(settings)
    assert {pem, *body, "s3cret-pass-word"} <= set(listed)
    # The PEM's armour lines are public text, not secrets.
    assert "-----BEGIN RSA PRIVATE KEY-----" not in listed


@pytest.mark.parametrize("field", ["github_api_url", "docgen_model", "openai_base_url"])
def test_plain_settings_are_not_listed(field):
    settings = Settings(_env_file=None, **{field: "https://plain.example/value-42"})
    assert "https://plain.example/value-42" not in secret_values(settings)


def test_an_unreadable_key_file_is_no_crash(tmp_path):
    settings = Settings(_env_file=None, github_private_key_path=tmp_path / "missing.pem")
    assert secret_values(settings) == []
