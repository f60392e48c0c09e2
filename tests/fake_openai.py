"""A local stand-in for the OpenAI Chat Completions API, and cassette helpers.

:class:`FakeOpenAI` is a small Starlette app answering ``POST /v1/chat/completions``
and Azure's ``POST /openai/deployments/{deployment}/chat/completions?api-version=…``
with bodies shaped like the real API's (ids, usage details, error objects), including
the checks the real API makes that our client could get wrong: authentication,
``api-version`` on Azure, ``max_tokens`` vs ``max_completion_tokens`` and
``temperature`` on reasoning models, a strict ``json_schema`` response format.

Scenarios are scripts chosen by the ``x-fake-scenario`` header (or a model named
``fake-<scenario>``); the n-th request carrying the same ``x-fake-run`` header plays
the n-th step (the last step repeats).  See :data:`SCENARIOS`.

:func:`serve` runs the app with uvicorn on 127.0.0.1 and a free port in a thread.
:func:`recorded` wraps a test in a vcrpy cassette: when the cassette exists it replays
with no server at all (the base URL is a ``.invalid`` host nobody resolves); when it
does not, the test fails unless ``DOCGEN_RECORD_CASSETTES=1``, which starts the server
and records.  To re-record after changing the prompt, the request shape or the fake's
answers: delete ``tests/cassettes/<name>.yaml`` and run the tests with that variable.

The fake decides right and wrong on its own: it counts tokens with tiktoken's own
o200k_base constructor and OpenAI's documented message framing, never with ``bot``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import functools
import hashlib
import json
import math
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public
import uvicorn
import vcr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CASSETTES = Path(__file__).parent / "cassettes"
REPLAY_HOST = "fake-openai.invalid"  # RFC 2606: never resolves, so replay cannot leak
API_KEY = "sk-test-docgen-0000000000000000000000001234"
AZURE_KEY = "azure-test-key-00000000000000000000005678"

# Each scenario is a script of steps; see FakeOpenAI._step.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "normal": ("ok",),
    "rate_limit": ("429", "ok"),  # Retry-After: 2 (seconds)
    "rate_limit_ms": ("429ms", "ok"),  # retry-after-ms: 1500
    "rate_limit_date": ("429date", "ok"),  # Retry-After: HTTP date, Date + 3 s
    "rate_limit_long": ("429long",),  # Retry-After: 3600
    "quota": ("429quota",),  # insufficient_quota: no Retry-After, as OpenAI sends none
    "server_error": ("500", "ok"),
    "always_500": ("500",),
    "overloaded": ("503", "502", "ok"),
    "slow": ("slow",),  # sleeps x-fake-delay seconds (default 2) before answering
    "invalid_json": ("invalid_json",),
    "hostile": ("hostile",),
    "wrong_params": ("wrong_params",),
    "wrong_then_ok": ("wrong_params", "ok"),  # for the repair round
    "wrong_then_length": ("wrong_params", "length"),  # a repair answer cut short
    "missing_ids": ("missing_ids",),
    "length": ("length",),
    "length_then_ok": ("length", "ok"),  # truncated once, then room enough
    "content_filter": ("content_filter",),
    "foreign_tokens": ("foreign",),  # usage as a tokenizer counting 8 % more would report
    "no_usage": ("no_usage",),
    "refusal": ("refusal",),
    "unauthorized": ("401",),
    "bad_request": ("400",),
    "not_found": ("404",),
    # llama-cpp-python's server: json_object (with a schema) and text only; any other
    # response_format is a validation error it answers with HTTP 500.
    "json_object_only": ("ok",),
}

FOREIGN_RATIO = 1.08  # the foreign_tokens scenario: SmolLM2's tokenizer, at its worst here

# The vendored tokenizer file, read by the fake itself (bot/data is data, not code):
# the fake counts with tiktoken's own o200k_base constructor, not with bot.docstrings.budget.
O200K_FILE = Path(__file__).parent.parent / "bot" / "data" / "tiktoken" / "o200k_base.tiktoken"


@functools.cache
def o200k() -> tiktoken.Encoding:
    """tiktoken's o200k_base (its pat_str, special tokens and sha256), from the local file.

    ``tiktoken_ext.openai_public.o200k_base`` would download the ranks; pointing its
    loader at the vendored file keeps tiktoken's own expected hash check.
    """

    def local(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        data = O200K_FILE.read_bytes()
        if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
            raise ValueError(f"{O200K_FILE} does not match tiktoken's sha256")
        ranks = {}
        for line in data.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        return ranks

    with mock.patch.object(tiktoken_ext.openai_public, "load_tiktoken_bpe", local):
        return tiktoken.Encoding(**tiktoken_ext.openai_public.o200k_base())


def count_tokens(text: str) -> int:
    return len(o200k().encode_ordinary(text))


def count_prompt(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as OpenAI's cookbook counts them ("How to count tokens with
    tiktoken"): 3 per message, the text of every field, 1 more for a ``name``, and 3
    priming the reply.  https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken
    """
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += count_tokens(value)
            if key == "name":
                total += 1
    return total


# llama-cpp-python 0.3.36's answer to a json_schema response_format (recorded).
LLAMA_FORMAT_ERROR = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
    "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}\n"
)

HOSTILE_SUMMARY = '"""\nimport os; os.system("rm -rf /")\n"""'


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class FakeOpenAI:
    """The app plus what it saw: ``requests`` (path, query, headers, JSON body)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.openai, methods=["POST"]),
                Route(
                    "/openai/deployments/{deployment}/chat/completions",
                    self.azure,
                    methods=["POST"],
                ),
            ]
        )

    # ----------------------------------------------------------------- routes

    async def openai(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        return await self._complete(request, None)

    async def azure(self, request: Request) -> Response:
        if not request.query_params.get("api-version"):
            return _error(404, "Resource not found", "invalid_request_error", "404")
        if not request.headers.get("api-key"):
            return JSONResponse(
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong "
                        "API endpoint. Make sure to provide a valid key for an active "
                        "subscription and use a correct regional API endpoint for your resource.",
                    }
                },
                status_code=401,
            )
        return await self._complete(request, request.path_params["deployment"])

    # --------------------------------------------------------------- behaviour

    def _step(self, request: Request, model: str) -> str:
        scenario = request.headers.get("x-fake-scenario")
        if scenario is None and model.startswith("fake-"):
            scenario = model.removeprefix("fake-")
        scenario = scenario or "normal"
        script = SCENARIOS.get(scenario, ("ok",))
        run = request.headers.get("x-fake-run", scenario)
        with self._lock:
            n = self.counts[run]
            self.counts[run] += 1
        return script[min(n, len(script) - 1)]

    async def _complete(self, request: Request, deployment: str | None) -> Response:
        # One Date header per response, set here (uvicorn's is off): Retry-After dates
        # are relative to it, and both must survive a replay together.
        date = email.utils.formatdate(usegmt=True)
        response = await self._answer_request(request, deployment, date)
        response.headers["date"] = date
        return response

    async def _answer_request(
        self, request: Request, deployment: str | None, date: str
    ) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
                None,
            )
        with self._lock:
            self.requests.append(
                {
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
        if request.headers.get("x-fake-scenario") == "json_object_only":
            problem = _llama_format_check(body)
        else:
            problem = self._validate(body)
        if problem is not None:
            return problem
        model = deployment or body["model"]
        step = self._step(request, body["model"])
        items = self._items(body)

        if step == "429":
            return _error(
                429,
                f"Rate limit reached for {model} on tokens per min (TPM): Limit 200000, "
                "Used 200000, Requested 900. Please try again in 2s.",
                "tokens",
                "rate_limit_exceeded",
                headers={"retry-after": "2", "x-ratelimit-remaining-tokens": "0"},
            )
        if step == "429ms":
            return _error(
                429,
                "Rate limit reached.",
                "requests",
                "rate_limit_exceeded",
                headers={"retry-after-ms": "1500"},
            )
        if step == "429date":
            later = email.utils.formatdate(
                email.utils.parsedate_to_datetime(date).timestamp() + 3, usegmt=True
            )
            return _error(
                429,
                "Rate limit reached.",
                "requests",
                "rate_limit_exceeded",
                headers={"retry-after": later},
            )
        if step == "429long":
            return _error(
                429,
                f"Rate limit reached for {model} on requests per day (RPD): Limit 10000, "
                "Used 10000, Requested 1. Please try again in 1h0m0s.",
                "requests",
                "rate_limit_exceeded",
                headers={"retry-after": "3600"},
            )
        if step == "429quota":
            # https://platform.openai.com/docs/guides/error-codes#api-errors: a quota
            # error comes without Retry-After; waiting does not help.
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing "
                "details. For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if step in ("500", "502", "503"):
            return _error(
                int(step),
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            )
        if step == "401":
            return _error(
                401,
                "Incorrect API key provided: sk-test-********1234. You can find your API "
                "key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if step == "400":
            return _error(
                400,
                "Invalid schema for response_format 'docs'.",
                "invalid_request_error",
                "invalid_value",
                "response_format",
            )
        if step == "404":
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        if step == "slow":
            await asyncio.sleep(float(request.headers.get("x-fake-delay", "2")))
            step = "ok"

        finish = "stop"
        refusal = None
        if step == "invalid_json":
            content: str | None = "Sure! Here are the docstrings you asked for: {docs: ["
        elif step == "refusal":
            content, refusal = None, "I'm sorry, but I can't help with that request."
        elif step == "content_filter":
            # The filter stops the answer part-way: what came before stays in content.
            content, finish = '{"docs": [{"id": "1", "summary": "', "content_filter"
        else:
            answers = [self._answer(item, step) for item in items]
            if step == "missing_ids":
                answers = answers[:1]
            content = json.dumps({"docs": answers}, ensure_ascii=False)
            if step == "length":
                content = content[: max(1, len(content) // 3)]
                finish = "length"
        # The answer's format is billed as input too: the schema, or the tool definitions.
        prompt_tokens = count_prompt(body["messages"]) + sum(
            count_tokens(json.dumps(body[key], separators=(",", ":")))
            for key in ("response_format", "tools")
            if key in body
        )
        if step == "foreign":
            prompt_tokens = math.ceil(prompt_tokens * FOREIGN_RATIO)
        completion_tokens = count_tokens(content or refusal or "")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if finish == "length" and limit:
            completion_tokens = int(limit)
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "gpt-4o-mini-2024-07-18"
            if model.startswith(("gpt-4o-mini", "fake-"))
            else model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_0000fake0",
        }
        if step == "no_usage":
            del payload["usage"]
        headers = {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-processing-ms": "42",
        }
        return JSONResponse(payload, headers=headers)

    def _validate(self, body: Any) -> Response | None:
        """The request checks the real API makes and our client could get wrong."""
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            return _error(
                400,
                "Missing required parameter: 'model' or 'messages'.",
                "invalid_request_error",
                "missing_required_parameter",
            )
        model = str(body["model"])
        reasoning = model.startswith(("o1", "o3", "o4", "gpt-5"))
        if reasoning and "max_tokens" in body:
            return _error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "invalid_request_error",
                "unsupported_parameter",
                "max_tokens",
            )
        if reasoning and "temperature" in body and body["temperature"] != 1:
            return _error(
                400,
                "Unsupported value: 'temperature' does not support 0 with this model. "
                "Only the default (1) value is supported.",
                "invalid_request_error",
                "unsupported_value",
                "temperature",
            )
        fmt = body.get("response_format")
        if fmt is not None:
            return _check_response_format(fmt, body["messages"])
        return None

    @staticmethod
    def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                content = message.get("content")
                return parse_items(content) if isinstance(content, str) else []
        return []

    @staticmethod
    def _answer(item: dict[str, Any], step: str) -> dict[str, Any]:
        source = str(item.get("source", ""))
        found = re.search(r"(?:def|class)\s+(\w+)", source)
        name = found.group(1) if found else "it"
        params = [
            {"name": str(p), "description": f"Value that controls how {name} behaves."}
            for p in item.get("params", [])
        ]
        summary = "Carry out one step of the workflow and report the outcome."
        if step == "wrong_params":
            params = [{"name": p["name"] + "_x", "description": "Renamed."} for p in params]
            params.append({"name": "unused_argument", "description": "Not in the signature."})
        if step == "hostile":
            summary = HOSTILE_SUMMARY
        return {
            "id": item.get("id", ""),
            "summary": summary,
            "description": "",
            "params": params,
            "returns": "The outcome of the step." if item.get("returns") else "",
            "yields": "Each intermediate result." if item.get("yields") else "",
            "raises": [
                {"name": e, "description": "If the input is not valid."}
                for e in item.get("raises", [])
            ],
        }


def _llama_format_check(body: dict[str, Any]) -> Response | None:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in ("text", "json_object"):
        return _error(500, LLAMA_FORMAT_ERROR, "internal_server_error", None)
    return None


# ------------------------------------------------------------------ the prompt

_HEADER = re.compile(r"## (\S+?)(?:; (.*))?")
_OPENING = re.compile(r" {0,3}(`{3,})([^`]*)")


def parse_items(text: str) -> list[dict[str, Any]]:
    """The items of a user message, read the way a Markdown reader would.

    An item is a ``## <id>; params: a, b; returns; yields; raises: E`` line, then
    ``fix:`` lines and fenced blocks whose info string names them (``context``,
    ``source``).  A fence closes only on a line of at least as many backticks
    (CommonMark), so what a hostile source holds stays inside its block.
    """
    items: list[dict[str, Any]] = []
    fence: tuple[int, str, list[str]] | None = None  # length, label, lines
    for line in text.split("\n"):
        if fence is not None:
            length, label, lines = fence
            if re.fullmatch(rf" {{0,3}}`{{{length},}} *", line):
                if items:
                    items[-1][label or "code"] = "\n".join(lines)
                fence = None
            else:
                lines.append(line)
            continue
        opening = _OPENING.fullmatch(line)
        if opening:
            fence = (len(opening.group(1)), opening.group(2).strip(), [])
            continue
        header = _HEADER.fullmatch(line)
        if header:
            item: dict[str, Any] = {"id": header.group(1), "params": [], "raises": []}
            for fact in (header.group(2) or "").split("; "):
                key, _, names = fact.partition(": ")
                if key in ("params", "raises"):
                    item[key] = names.split(", ")
                elif key in ("returns", "yields"):
                    item[key] = True
            items.append(item)
        elif line.startswith("fix: ") and items:
            items[-1].setdefault("fix", []).append(line.removeprefix("fix: "))
    return items


# https://platform.openai.com/docs/guides/structured-outputs#supported-schemas: the
# keywords strict mode accepts; any other ("minLength", "default", "uniqueItems", ...)
# is refused with a 400 naming it.
STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum",
        "const", "anyOf", "$defs", "definitions", "$ref", "description", "title",
        "pattern", "format", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "minItems", "maxItems",
    }
)  # fmt: skip
_NAMED_MAPS = ("properties", "$defs", "definitions")  # their keys are names, not keywords


def _unsupported_keyword(
    schema: Any, path: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], str] | None:
    """The first keyword strict mode does not permit, with where it is."""
    if isinstance(schema, list):
        for sub in schema:
            found = _unsupported_keyword(sub, path)
            if found:
                return found
        return None
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in STRICT_KEYWORDS:
            return path, key
        if key in _NAMED_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                found = _unsupported_keyword(sub, (*path, key, name))
                if found:
                    return found
        elif key in ("items", "anyOf"):
            found = _unsupported_keyword(value, (*path, key))
            if found:
                return found
    return None


def _bad_format(message: str, param: str = "response_format", code: str | None = None) -> Response:
    # OpenAI's schema errors come with code null and param "response_format".
    return _error(400, message, "invalid_request_error", code, param)


def _check_response_format(fmt: Any, messages: list[Any]) -> Response | None:
    """What the real API refuses in ``response_format``, in its words."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        # https://platform.openai.com/docs/guides/structured-outputs#json-mode
        if "json" not in json.dumps(messages).lower():
            return _bad_format(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "messages",
            )
        return None
    if kind != "json_schema":
        return _bad_format(
            f"Invalid value: {kind!r}. Supported values are: 'json_object', 'json_schema', "
            "and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        return _bad_format(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    name, schema = spec["name"], spec.get("schema")
    if spec.get("strict") is True:
        found = _unsupported_keyword(schema)
        if found is not None:
            where, keyword = found
            return _bad_format(
                f"Invalid schema for response_format '{name}': In context={where!r}, "
                f"'{keyword}' is not permitted."
            )
        if not _strict_ok(schema):
            return _bad_format(
                f"Invalid schema for response_format '{name}': In context=(), "
                "'additionalProperties' is required to be supplied and to be false, and "
                "'required' must list every key in 'properties'."
            )
    return None


def _strict_ok(
    schema: Any, defs: dict[str, Any] | None = None, seen: frozenset[str] = frozenset()
) -> bool:
    """Strict mode's rules: every object lists all properties as required, no extras;
    a ``$ref`` points into the root's ``$defs``."""
    if not isinstance(schema, dict):
        return False
    if defs is None:
        defs = schema.get("$defs", {})
        if not isinstance(defs, dict):
            return False
    if "$ref" in schema:
        ref = schema["$ref"]
        name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
        if ref == name or name not in defs:
            return False
        return name in seen or _strict_ok(defs[name], defs, seen | {name})
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", [])) != set(props):
            return False
        return all(_strict_ok(p, defs, seen) for p in props.values())
    if schema.get("type") == "array":
        return _strict_ok(schema.get("items"), defs, seen)
    return "type" in schema


# ----------------------------------------------------------------------- serving


@contextlib.contextmanager
def serve(fake: FakeOpenAI | None = None) -> Iterator[tuple[str, FakeOpenAI]]:
    """Run the fake on 127.0.0.1:<free port> in a thread; yields (origin, fake)."""
    fake = fake or FakeOpenAI()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        fake.app,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        date_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---------------------------------------------------------------------- cassettes


def _json_body(r1: Any, r2: Any) -> None:
    def load(r: Any) -> Any:
        raw = r.body
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return json.loads(raw) if raw else None

    assert load(r1) == load(r2), "request bodies differ"


def _rewrite_host(request: Any) -> Any:
    # Record a fixed origin instead of 127.0.0.1:<random port>: cassettes stay stable.
    parsed = request.parsed_uri
    request.uri = parsed._replace(scheme="http", netloc=REPLAY_HOST).geturl()
    for name in [h for h in request.headers if h.lower().startswith("x-stainless")]:
        del request.headers[name]  # SDK and machine details: noise in a cassette
    request.headers.pop("host", None)
    return request


def make_vcr() -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="once",
        filter_headers=["authorization", "api-key", "x-stainless-retry-count"],
        match_on=["method", "path", "query", "json_body"],
        before_record_request=_rewrite_host,
        decode_compressed_response=True,
    )
    recorder.register_matcher("json_body", _json_body)
    return recorder


VCR = make_vcr()


@dataclass
class Recording:
    """What a test gets from :func:`recorded`."""

    origin: str  # scheme://host:port to point the client at
    cassette: Any
    fake: FakeOpenAI | None  # None when replaying

    @property
    def live(self) -> bool:
        return self.fake is not None


RECORD_ENV = "DOCGEN_RECORD_CASSETTES"


def recording_allowed() -> bool:
    """Whether a missing cassette may be recorded (``DOCGEN_RECORD_CASSETTES=1``)."""
    return os.environ.get(RECORD_ENV, "") not in ("", "0")


@contextlib.contextmanager
def recorded(name: str) -> Iterator[Recording]:
    """Replay ``tests/cassettes/<name>.yaml``; record it against :func:`serve` only when
    ``DOCGEN_RECORD_CASSETTES=1``.

    Without the variable a missing cassette fails the test: a cassette recorded
    silently in CI (or after a typo in its name) would test nothing.
    """
    path = CASSETTES / f"{name}.yaml"
    if path.exists():
        with VCR.use_cassette(path.name, allow_playback_repeats=False) as cassette:
            yield Recording(f"http://{REPLAY_HOST}", cassette, None)
        return
    if not recording_allowed():
        pytest.fail(
            f"cassette tests/cassettes/{name}.yaml is missing; record it with "
            f"{RECORD_ENV}=1 (against tests/fake_openai.py's server)",
            pytrace=False,
        )
    CASSETTES.mkdir(exist_ok=True)
    with serve() as (origin, fake), VCR.use_cassette(path.name) as cassette:
        yield Recording(origin, cassette, fake)
