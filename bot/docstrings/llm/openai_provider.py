"""Chat Completions with structured output: OpenAI, Azure OpenAI or any compatible server.

The SDK's own retries are off; :mod:`bot.docstrings.llm.failures` decides what a failed attempt
means, and each attempt is charged to the budget (``GenerationRequest.spend``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.docstrings.llm.answer import clean_text, parse_response
from bot.docstrings.llm.failures import Failure, RetryPolicy, classify, redact, shape_refusal
from bot.docstrings.llm.limit import AdaptiveLimit
from bot.docstrings.llm.prompt import build_messages
from bot.docstrings.llm.provider import (
    TRUNCATED,
    ConfigError,
    GenerationRequest,
    GenerationResult,
    ProviderError,
    item_ids,
)
from bot.docstrings.llm.schema import (
    GRAMMAR_MODES,
    MODE_LABELS,
    RESPONSE_MODES,
    format_args,
    response_schema,
)
from bot.docstrings.models import DocParts, Usage

if TYPE_CHECKING:  # openai takes ~1 s to import: only the online path pays for it.
    import openai

    from bot.docstrings.tokens import TokenCounter

log = logging.getLogger(__name__)

def _is_reasoning_model(model: str) -> bool:
    # o-series and gpt-5 take max_completion_tokens and reject temperature.
    name = model.lower().removeprefix("ft:")
    return bool(re.match(r"^(o\d|gpt-5)", name))


class OpenAIProvider:
    """Chat Completions with structured output, for OpenAI, Azure and compatible servers.

    The client must be built with ``max_retries=0`` (see
    :func:`bot.docstrings.llm.factory.make_provider`): this class retries itself so that waits go
    through the injected ``sleep``, and so that each attempt is charged to the budget
    (``GenerationRequest.spend``).

    ``response_format`` is ``auto`` or one of :data:`~bot.docstrings.llm.schema.RESPONSE_MODES`.
    In ``auto`` the first call probes: a server refusing a mode's shape moves this
    provider (one base URL and model) to the next mode at the cost of that one refused
    call, and calls wait for the probe instead of all failing at once.  A forced mode
    the server refuses is a configuration error, and so is every mode refused.
    """

    name = "openai"
    offline = False

    def __init__(
        self,
        client: openai.AsyncOpenAI | openai.AsyncAzureOpenAI,
        model: str,
        *,
        timeout: float,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        counter: TokenCounter | None = None,
        name: str | None = None,
        response_format: str = "auto",
        concurrency: int = 4,
    ) -> None:
        if response_format != "auto" and response_format not in RESPONSE_MODES:
            raise ConfigError(
                f"DOCGEN_RESPONSE_FORMAT must be auto or one of {', '.join(RESPONSE_MODES)}"
            )
        self.client = client
        self.model = model
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self._counter = counter
        if name is not None:
            self.name = name
        self.response_format = response_format
        self._modes = RESPONSE_MODES if response_format == "auto" else (response_format,)
        self._mode_index = 0
        self._confirmed = False  # a call in the current mode has been answered
        self._fatal: str | None = None  # why no call can succeed (set once, kept)
        self._probe: asyncio.Lock | None = None
        self._probe_loop: asyncio.AbstractEventLoop | None = None
        self.limit = AdaptiveLimit(concurrency)

    @property
    def concurrency(self) -> int:
        """Calls the pipeline may have in flight (the adaptive limit never exceeds it)."""
        return self.limit.maximum

    @property
    def mode(self) -> str:
        """The response mode the next call will use."""
        return self._modes[self._mode_index]

    @property
    def known_mode(self) -> str | None:
        """The mode calls use once the server has answered one (else None: unknown)."""
        return self.mode if self._confirmed or len(self._modes) == 1 else None

    def _secrets(self) -> tuple[str, ...]:
        key = getattr(self.client, "api_key", None)
        return (key,) if isinstance(key, str) and key else ()

    def _request_args(
        self, request: GenerationRequest, mode: str, schema: dict[str, Any]
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(request, mode),
            "timeout": self.timeout,
            **format_args(mode, schema),
        }
        if _is_reasoning_model(self.model):
            if request.max_tokens > 0:
                args["max_completion_tokens"] = request.max_tokens
        else:
            args["temperature"] = 0
            if request.max_tokens > 0:
                args["max_tokens"] = request.max_tokens
        return args

    def _probe_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._probe is None or self._probe_loop is not loop:
            self._probe, self._probe_loop = asyncio.Lock(), loop
        return self._probe

    async def _send(self, request: GenerationRequest) -> tuple[Any, str, list[str], float]:
        """One call, probing modes when not yet confirmed; calls wait for a probe."""
        if self._fatal is not None:
            raise ProviderError(self._fatal) from None
        if self._confirmed:
            return await self._attempts(request)
        async with self._probe_lock():
            if self._fatal is not None:
                raise ProviderError(self._fatal) from None
            sent = await self._attempts(request)
            self._confirmed = True
            return sent

    def _refused(self, mode: str, why: str, notes: list[str]) -> bool:
        """Move to the next mode after ``why``; False when none is left (then fatal)."""
        why = redact(why, self._secrets())
        if self.response_format == "auto" and self._mode_index + 1 < len(self._modes):
            self._mode_index += 1
            self._confirmed = False
            notes.append(
                f"the server refused {MODE_LABELS[mode]} ({why}); "
                f"using {MODE_LABELS[self.mode]} instead"
            )
            return True
        hint = (
            "set DOCGEN_RESPONSE_FORMAT=auto"
            if self.response_format != "auto"
            else "no response mode left"
        )
        self._fatal = f"configuration error: the server refused {MODE_LABELS[mode]}: {why} ({hint})"
        return False

    async def _attempts(self, request: GenerationRequest) -> tuple[Any, str, list[str], float]:
        import openai

        notes: list[str] = []
        attempt = 0
        while True:
            mode = self.mode
            schema = response_schema(request, lengths=mode in GRAMMAR_MODES)
            args = self._request_args(request, mode, schema)
            async with self.limit.slot():
                started = time.monotonic()  # the timeout runs from here, not from queueing
                try:
                    response = await self.client.chat.completions.create(**args)
                except openai.OpenAIError as exc:
                    refused = shape_refusal(exc, mode)
                    failure = classify(exc, self.timeout)
                else:
                    self.limit.answered()
                    return response, mode, notes, time.monotonic() - started
            if refused is not None:
                log.info("the server refused mode %s: %s", mode, refused)
                if self._refused(mode, refused, notes):
                    continue  # answered at once and billed nothing: not a retry
                raise ProviderError(self._fatal or refused, retryable=False) from None
            attempt = await self._after_failure(request, failure, attempt)

    async def _after_failure(
        self, request: GenerationRequest, failure: Failure, attempt: int
    ) -> int:
        """Charge, decide and wait after a failed attempt; the next attempt's number,
        or :class:`ProviderError` when there is none."""
        log.debug("model call failed (attempt %d): %s", attempt + 1, failure.reason)
        if failure.timed_out:
            self.limit.timed_out()
        if failure.unanswered and request.spend is not None:
            request.spend.unanswered()
        tries = f" after {attempt + 1} attempts" if attempt else ""
        if failure.fatal:
            self._fatal = failure.reason
        if not failure.retryable:
            raise ProviderError(failure.reason + tries, retryable=False) from None
        if attempt >= self.retry.max_retries:
            raise ProviderError(failure.reason + tries, retryable=True) from None
        wait = failure.wait
        if wait is not None and wait > self.retry.max_retry_after:
            raise ProviderError(
                f"{failure.reason}: the server asked to wait {wait:.0f} s, "
                f"more than the {self.retry.max_retry_after:g} s allowed",
                retryable=True,
            ) from None
        if request.spend is not None:
            no_room = request.spend.again()
            if no_room is not None:
                raise ProviderError(f"{failure.reason}{tries}; not retried: {no_room}") from None
        if wait is None or wait <= 0:
            wait = self.retry.backoff(attempt, self._rand)
        await self._sleep(wait)
        return attempt + 1

    def _count(self) -> TokenCounter:
        if self._counter is None:
            from bot.docstrings.tokens import TokenCounter, encoding_for_model, load_encoding

            self._counter = TokenCounter(load_encoding(encoding_for_model(self.model)))
        return self._counter

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Send one batch; retry transient failures; parse the answer defensively.

        Raises :class:`ProviderError` when the call fails for good.  Per-item problems
        (missing, malformed, truncated answers) come back in ``errors``.
        """
        short = item_ids(request)  # "1", "2", ... in the prompt → target ids
        ids = list(short)
        if not ids:
            return GenerationResult({}, {}, Usage(), self.model)
        response, mode, notes, seconds = await self._send(request)

        content, finish, refusal = _answer_text(response)
        if refusal and not content:
            parts: dict[str, DocParts] = {}
            errors = dict.fromkeys(ids, f"model refused: {clean_text(str(refusal), 200)}")
        elif not content:
            parts, errors = {}, dict.fromkeys(ids, "empty answer from model")
        else:
            parts, errors = parse_response(content, set(ids))
        if finish == "length":
            errors = dict.fromkeys(errors, TRUNCATED)
        elif finish == "content_filter":
            errors = dict.fromkeys(errors, "answer blocked by the content filter")

        usage_obj = getattr(response, "usage", None)
        prompt = getattr(usage_obj, "prompt_tokens", None)
        completion = getattr(usage_obj, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            usage = Usage(prompt, completion)
        else:
            counter = self._count()
            usage = Usage(
                counter.count_messages(build_messages(request, mode)), counter.count(content)
            )
            notes.append("the API reported no token usage; estimated with tiktoken")
            log.warning("no usage in the API response; estimated %d tokens", usage.total)
        model = getattr(response, "model", None)
        return GenerationResult(
            {short[k]: v for k, v in parts.items()},
            {short[k]: v for k, v in errors.items()},
            usage,
            model if isinstance(model, str) and model else self.model,
            tuple(notes),
            mode,
            seconds,
        )


def _answer_text(response: Any) -> tuple[str, str | None, str | None]:
    """The answer's JSON text (a forced tool call's arguments, else the content), the
    finish reason and any refusal."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        return "", None, None
    choice = choices[0]
    message = choice.message
    if message is None:
        return "", choice.finish_reason, None
    content = message.content or ""
    for call in getattr(message, "tool_calls", None) or []:
        function = getattr(call, "function", None)
        arguments = getattr(function, "arguments", None)
        if isinstance(arguments, str) and arguments.strip():
            content = arguments
            break
    return content, choice.finish_reason, getattr(message, "refusal", None)
