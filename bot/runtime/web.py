"""The web process: ``POST /webhook``, ``GET /healthz``, ``GET /metrics``.

The webhook handler only decides and records: it verifies the signature on the raw
bytes, parses, routes (:mod:`bot.runtime.events`), writes the delivery and the job to the
store, wakes a worker and answers — in milliseconds.  All GitHub and LLM work
happens after the response, in :mod:`bot.runtime.review_job`.

Errors map to HTTP statuses here, once: 401 bad or missing signature, 400 malformed
JSON or missing headers, 413 body over 25 MB, 408 body too slow, 503 too many bodies
in flight (:mod:`bot.runtime.intake`), 202 queued, 200 ignored or duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import logs
from bot.runtime import events
from bot.runtime.intake import (
    BodyLimits,
    BodyRefused,
    InFlight,
    event_label,
    read_body,
    signature_matches,
)
from bot.runtime.metrics import Metrics
from bot.runtime.queue.store import BatchItem, EnqueueResult, Recorded, Store, StoreBusy

log = logging.getLogger(__name__)

BUSY_PATIENCE = 2.0  # seconds of polite retries for the store's write lock
# Headers are logged with the delivery (GitHub's are short: a GUID, an event name);
# a stranger's need not be long.
EVENT_LOG_CHARS = 64


@dataclass
class Deps:
    """What the web process needs; built by ``docgen serve`` (or a test)."""

    webhook_secret: str
    store: Store
    metrics: Metrics
    app_id: int | None = None
    run_drafts: bool = False
    skip_forks: bool = False
    reply_to_strangers: bool = False
    wake: Callable[[], None] = lambda: None  # nudge the workers after an enqueue
    forget: Callable[[int], None] = lambda installation_id: None  # drop cached tokens
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None
    body_limits: BodyLimits = field(default_factory=BodyLimits)


def job_payload(decision: events.Run | events.Reply, delivery_id: str) -> dict[str, Any]:
    """The JSON a job carries: the decision's fields plus the delivery id."""
    # Shallow copies: dataclasses.asdict deep-copies field by field (a third of the
    # ack's CPU before this); the decision's fields are plain values and ``Options``.
    data = dict(vars(decision))
    if isinstance(decision, events.Run):
        options = dict(vars(decision.options))
        options["paths"] = list(decision.options.paths)
        data["options"] = options
    data["type"] = "review" if isinstance(decision, events.Run) else "reply"
    data["delivery_id"] = delivery_id
    return data


@dataclass
class _Delivery:
    decision: events.Handling
    delivery_id: str
    event: str
    action: str
    outcome: str
    done: asyncio.Future[Recorded]


def _batch_item(d: _Delivery) -> BatchItem:
    """The delivery as the store records it, with its job (key, kind, payload) if any."""
    job = None
    if isinstance(d.decision, events.Run | events.Reply):
        kind = "review" if isinstance(d.decision, events.Run) else "reply"
        job = (d.decision.key, kind, job_payload(d.decision, d.delivery_id))
    return BatchItem(d.delivery_id, d.event, d.action, d.outcome, job)


class Recorder:
    """Writes deliveries and their jobs to the store before they are answered.

    **Group commit.**  The deliveries that reach this point in the same turn of the
    event loop are written together (:meth:`~bot.runtime.queue.store.Store.record_batch`: one
    SQLite transaction with a savepoint each, or two Redis pipelines; one failing fails
    only itself).  Every delivery is still in the store, with its job, before its 202
    (invariant 6); a batch costs one write lock and one commit instead of one per
    delivery, which is what lets several web processes share one SQLite journal.

    **Politeness.**  When another process holds the write lock (:class:`StoreBusy`),
    the batch waits *here*, yielding the event loop (the requests in flight go on being
    read and verified, and join the next batch), rather than in SQLite's busy handler,
    which sleeps with the whole loop blocked.  After ``BUSY_PATIENCE`` s it waits
    SQLite's way.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[_Delivery] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches written (tests, curiosity)

    async def record(
        self, decision: events.Handling, delivery_id: str, event: str, action: str, outcome: str
    ) -> Recorded:
        """Record one delivery (and enqueue its job); returns (new?, the job)."""
        loop = asyncio.get_running_loop()
        d = _Delivery(decision, delivery_id, event, action, outcome, loop.create_future())
        self._pending.append(d)
        if not self._flushing:
            self._flushing = True
            # Runs after this turn's other deliveries have queued behind this one.
            self._task = loop.create_task(self._flush())
        return await d.done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._write([_batch_item(d) for d in batch])
                except Exception as exc:  # the batch failed: every one of them
                    results = [exc] * len(batch)
                for d, result in zip(batch, results, strict=True):
                    if d.done.done():  # its request went away meanwhile
                        continue
                    if isinstance(result, BaseException):
                        d.done.set_exception(result)
                    else:
                        d.done.set_result(result)
        finally:
            self._flushing = False

    async def _write(self, items: list[BatchItem]) -> list[Recorded | Exception]:
        deadline = time.monotonic() + BUSY_PATIENCE
        delay = 0.0002
        while time.monotonic() < deadline:
            try:
                return self._written(self.store.record_batch(items, wait=False))
            except StoreBusy:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.002)
        return self._written(self.store.record_batch(items, wait=True))

    def _written(self, results: list[Recorded | Exception]) -> list[Recorded | Exception]:
        self.batches += 1
        return results


def _answer(
    status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status, headers=headers)


class Webhook:
    """``POST /webhook``: verify, parse, route, record, answer — and one log line."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.recorder = Recorder(deps.store)
        self.inflight = InFlight(deps.body_limits.in_flight_bytes)

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        delivery_id = request.headers.get("x-github-delivery", "")
        event = request.headers.get("x-github-event", "")
        short = EVENT_LOG_CHARS
        with logs.bind(delivery_id=delivery_id[:short] or None, event=event[:short] or None):
            facts: dict[str, Any] = {}
            response, outcome = await self._receive(request, delivery_id, event, facts)
            # Only a signed delivery names its event in the metrics (see bot.runtime.intake).
            label = event_label(event, verified=facts.pop("verified", False))
            self.deps.metrics.deliveries.labels(label, outcome).inc()
            self.deps.metrics.ack_seconds.observe(time.perf_counter() - started)
            # One line per delivery (the ack path's largest cost after the store).
            log.info(
                "webhook %s -> %s (%s)",
                label,
                response.status_code,
                outcome,
                extra={"status": response.status_code, "outcome": outcome, **facts},
            )
            return response

    async def _receive(
        self, request: Request, delivery_id: str, event: str, facts: dict[str, Any]
    ) -> tuple[Response, str]:
        try:
            body = await read_body(
                request.stream(),
                request.headers.get("content-length"),
                self.deps.body_limits,
                self.inflight,
            )
        except BodyRefused as exc:
            headers = {"Retry-After": "5"} if exc.status == 503 else None
            return _answer(exc.status, exc.reason, headers=headers), exc.outcome
        except ClientDisconnect:  # gone mid-body: nobody to answer, nothing to report
            return _answer(400, "client disconnected"), "disconnected"
        try:
            checked = self._verified(request, body.data, delivery_id, event, facts)
            if isinstance(checked, tuple):
                return checked
            return await self._record(checked, delivery_id, event, facts)
        finally:
            body.close()

    def _verified(
        self,
        request: Request,
        body: bytearray,
        delivery_id: str,
        event: str,
        facts: dict[str, Any],
    ) -> dict[str, Any] | tuple[Response, str]:
        """The payload of a signed, well-formed delivery, or the answer refusing it."""
        # Invariant 5: nothing is read from the body before the signature matches.
        signature = request.headers.get("x-hub-signature-256", "")
        if not signature.startswith("sha256="):
            return _answer(401, "missing X-Hub-Signature-256"), "unsigned"
        if not signature_matches(self.deps.webhook_secret, body, signature):
            return _answer(401, "signature does not match"), "bad_signature"
        facts["verified"] = True
        if not event:
            return _answer(400, "missing X-GitHub-Event header"), "bad_request"
        if not delivery_id:
            return _answer(400, "missing X-GitHub-Delivery header"), "bad_request"
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _answer(
                400, f"body is not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}"
            ), "bad_json"
        if not isinstance(payload, dict):
            return _answer(400, "body is not a JSON object"), "bad_json"
        return payload

    async def _record(
        self, payload: dict[str, Any], delivery_id: str, event: str, facts: dict[str, Any]
    ) -> tuple[Response, str]:
        deps = self.deps
        decision = events.decide(
            event,
            payload,
            app_id=deps.app_id,
            run_drafts=deps.run_drafts,
            skip_forks=deps.skip_forks,
            reply_to_strangers=deps.reply_to_strangers,
        )
        action = str(payload.get("action") or "")
        outcome = type(decision).__name__.lower()
        # Invariant 6: the delivery and its job are in the store, in one commit,
        # before we answer; a redelivery of the same id is acted on once (invariant 4).
        recorded, result = await self.recorder.record(
            decision, delivery_id, event, action, outcome
        )
        if not recorded:
            return _answer(200, "duplicate delivery: already handled"), "duplicate"
        if result is not None:
            assert isinstance(decision, events.Run | events.Reply)
            facts.update(job_id=result.job_id, job_key=decision.key)
            if result.coalesced:
                facts["coalesced"] = True
            if result.behind:
                facts["behind_job"] = result.behind
        return self._answer_for(decision, result)

    def _answer_for(
        self, decision: events.Handling, result: EnqueueResult | None
    ) -> tuple[Response, str]:
        if isinstance(decision, events.Ignore):
            return _answer(200, f"ignored: {decision.reason}"), "ignored"
        if isinstance(decision, events.Forget):
            self.deps.forget(decision.installation_id)
            return _answer(200, "installation credentials forgotten"), "forgotten"
        assert result is not None  # a Run or a Reply: its job was enqueued
        self.deps.wake()
        return (
            _answer(202, "queued", job_id=result.job_id, coalesced=result.coalesced),
            "queued",
        )


def create_app(deps: Deps) -> Starlette:
    """The Starlette application over ``deps``."""
    webhook = Webhook(deps)

    async def healthz(request: Request) -> Response:
        if deps.store.writable():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "journal not writable"}, status_code=503)

    async def metrics(request: Request) -> Response:
        return Response(deps.metrics.render(), media_type=deps.metrics.content_type)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if deps.lifespan is None:
            yield
            return
        async with deps.lifespan():
            yield

    return Starlette(
        routes=[
            Route("/webhook", webhook.handle, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
