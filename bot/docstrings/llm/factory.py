"""The provider the settings select."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.docstrings.llm.failures import RetryPolicy
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.llm.openai_provider import OpenAIProvider
from bot.docstrings.llm.provider import ConfigError, Provider

if TYPE_CHECKING:
    import openai

    from bot.config import Settings

def _secret(value: Any) -> str | None:
    if value is None:
        return None
    raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return raw or None


def make_provider(settings: Settings) -> Provider:
    """The provider the settings select; :class:`ConfigError` when they are incomplete.

    Offline without a key.  The SDK client is built with ``max_retries=0`` because
    :class:`OpenAIProvider` retries itself.
    """
    _check(settings)
    kind = settings.provider_kind()
    if kind == "offline":
        return OfflineProvider()
    shared: dict[str, Any] = {
        "timeout": settings.docgen_timeout,
        "retry": RetryPolicy(max_retries=settings.docgen_max_retries),
        "response_format": settings.docgen_response_format,
        "concurrency": settings.docgen_llm_concurrency,
    }
    if kind == "azure":
        client, model = _azure_client(settings)
        return OpenAIProvider(client, model, name="azure", **shared)
    return OpenAIProvider(_openai_client(settings), settings.docgen_model, **shared)


def _check(settings: Settings) -> None:
    """:class:`ConfigError` naming the variable a selected provider lacks."""
    forced = settings.docgen_provider
    openai_key = _secret(settings.openai_api_key)
    azure_key = _secret(settings.azure_openai_api_key)
    endpoint = settings.azure_openai_endpoint or None
    deployment = settings.azure_openai_deployment or None

    if forced in ("auto", "azure") and (endpoint or azure_key or deployment):
        if not endpoint and (forced == "azure" or not openai_key):
            raise ConfigError("AZURE_OPENAI_ENDPOINT is not set (other AZURE_OPENAI_* are)")
        if endpoint and not azure_key:
            raise ConfigError("AZURE_OPENAI_API_KEY is not set (AZURE_OPENAI_ENDPOINT is)")
    if forced == "azure" and not endpoint:
        raise ConfigError("AZURE_OPENAI_ENDPOINT is not set (DOCGEN_PROVIDER=azure)")
    if forced == "openai" and not openai_key:
        raise ConfigError("OPENAI_API_KEY is not set (DOCGEN_PROVIDER=openai)")
    if forced == "auto" and settings.openai_base_url and not openai_key and not endpoint:
        raise ConfigError(
            "OPENAI_API_KEY is not set (OPENAI_BASE_URL is; any non-empty value works "
            "for servers without authentication)"
        )


def _azure_client(settings: Settings) -> tuple[openai.AsyncOpenAI, str]:
    """The Azure OpenAI client (checked by :func:`_check`) and its deployment's model."""
    import openai

    deployment = settings.azure_openai_deployment or None
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=settings.azure_openai_endpoint,
        api_key=_secret(settings.azure_openai_api_key),
        api_version=settings.openai_api_version,
        azure_deployment=deployment,
        max_retries=0,
        timeout=settings.docgen_timeout,
    )
    return client, deployment or settings.docgen_model


def _openai_client(settings: Settings) -> openai.AsyncOpenAI:
    import openai

    return openai.AsyncOpenAI(
        api_key=_secret(settings.openai_api_key),
        base_url=settings.openai_base_url or None,
        max_retries=0,
        timeout=settings.docgen_timeout,
    )
