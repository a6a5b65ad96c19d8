"""The providers' native batch APIs, served by the emulator in the wire formats the real SDKs use.

* OpenAI (``openai`` SDK): ``POST /v1/files`` (multipart, ``purpose=batch``, a JSONL file whose lines are
  ``{"custom_id", "method": "POST", "url", "body"}``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``;
  ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/batches``.
  An ended batch has an output file (one line per answered item) and an error file (failed items, and items
  not run because the batch expired or was cancelled).
* Anthropic (``anthropic`` SDK): ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
  ``POST /v1/messages/batches/{id}/cancel``, ``GET /v1/messages/batches``, and the JSONL results at
  ``GET /v1/messages/batches/{id}/results`` (the batch's absolute ``results_url``).
* Gemini (``google-genai`` SDK, Developer API): ``POST /v1beta/models/{model}:batchGenerateContent`` with
  inlined requests (dispatched by the emulator's model route), ``GET /v1beta/batches/{id}`` (the answers
  inlined in ``metadata.output`` once ended), ``POST /v1beta/batches/{id}:cancel``, ``GET /v1beta/batches``;
  ``/v1/...`` too.

A batch is pending for ``Faults.batch_delay_s``, then ends when it is next looked at; its items are answered
then by the same code as the realtime endpoints, with the item's key as the salt, so that an item answers
exactly what the realtime call with the same key answers. The fault knobs ``batch_item_failure_rate``,
``batch_expiry_rate``, ``batch_poll_error_rate`` and ``batch_outage_s`` are fixed for a batch when it is
created (the first two) or read per request (the last two). A cancelled batch ends at once: the items it had
not answered yet (its progress is the share of ``batch_delay_s`` elapsed) end canceled.

Every answered item counts as a completion of its key (with the realtime ones), and every submission of a key
in the emulator's stats (``batch_items_submitted``, ``max_submissions_per_key``, ...).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from specstress.emulator.wire import Call, RequestRefused, _error_body

FAILURE_MESSAGE = "emulated batch item failure"
OPENAI_URLS = {"/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/embeddings": "embeddings"}
GEMINI_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
DAY_S = 86_400


def _unit(text: str) -> float:
    """A uniform number in [0, 1) picked deterministically by ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big") / 2.0**64


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _hex(n: int = 24) -> str:
    return uuid.uuid4().hex[:n]


@dataclass
class Item:
    """One request of a batch and, once the batch ended, its outcome."""

    key: str | None          # the ledger key (custom_id, or the Gemini metadata key)
    salt: str                # the key, or the body when it has none (as a realtime call without a key)
    kind: str                # chat | responses | embeddings | messages | generateContent
    body: dict[str, Any]
    submission: int          # this key's submission number (1: its first batch)
    outcome: str = "pending"  # succeeded | errored | expired | canceled
    response: dict[str, Any] | None = None
    error: tuple[int, dict[str, Any]] | None = None   # (HTTP status, the provider's error body)
    metadata: dict[str, Any] | None = None   # Gemini: the request's metadata, echoed with its answer


@dataclass
class Batch:
    """A batch of one provider, with the fault knobs fixed when it was created."""

    id: str
    provider: str            # openai | anthropic | google
    items: list[Item]
    created: float
    created_mono: float
    delay_s: float
    failure_rate: float
    expires: bool
    model: str = ""
    endpoint: str = ""       # OpenAI: the batch's endpoint URL
    input_file_id: str = ""
    metadata: dict[str, Any] | None = None
    display_name: str = ""
    status: str = "pending"  # pending | completed | expired | cancelled | failed
    ended: float | None = None
    cancelled_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for it in self.items if it.outcome == outcome)


@dataclass
class File:
    """An OpenAI file (a batch's input, output or errors)."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created: int = field(default_factory=lambda: int(time.time()))

    def obj(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": self.created,
                "filename": self.filename, "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}


def _multipart(content_type: str, data: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = BytesParser(policy=HTTP).parsebytes(head + data)
    out: dict[str, tuple[str | None, bytes]] = {}
    if not msg.is_multipart():
        return out
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        out[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return out


def _openai_error(message: str, etype: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def _anthropic_error(message: str, etype: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message}}


def _google_error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _failure(provider: str) -> tuple[int, dict[str, Any]]:
    """The error of an item the ``batch_item_failure_rate`` knob failed (a server error)."""
    if provider == "openai":
        return 500, {"error": {"message": FAILURE_MESSAGE, "type": "server_error"}}
    if provider == "anthropic":
        return 500, _anthropic_error(FAILURE_MESSAGE, "api_error")
    return 500, {"code": 500, "message": FAILURE_MESSAGE, "status": "INTERNAL"}


class BatchAPI:
    """The batch routes of an :class:`~specstress.emulator.server.Emulator`; batches live on its state."""

    def __init__(self, emulator: Any) -> None:   # a specstress.emulator.server.Emulator
        self.em = emulator

    @property
    def state(self) -> Any:   # its EmulatorState
        return self.em.state

    def routes(self) -> list[Route]:
        """The routes, to be placed before the emulator's catch-all Gemini model route."""
        return [
            Route("/v1/files", self.openai_file_upload, methods=["POST"]),
            Route("/v1/files/{file_id}", self.openai_file_get, methods=["GET"]),
            Route("/v1/files/{file_id}/content", self.openai_file_content, methods=["GET"]),
            Route("/v1/messages/batches", self.anthropic_batches, methods=["GET", "POST"]),
            Route("/v1/messages/batches/{batch_id}", self.anthropic_get, methods=["GET"]),
            Route("/v1/messages/batches/{batch_id}/cancel", self.anthropic_cancel, methods=["POST"]),
            Route("/v1/messages/batches/{batch_id}/results", self.anthropic_results, methods=["GET"]),
            # /v1/batches is OpenAI's and (API version v1) Gemini's: told apart by the batch or the headers
            Route("/{version:str}/batches", self.batches_root, methods=["GET", "POST"]),
            Route("/{version:str}/batches/{rest:path}", self.batches_one, methods=["GET", "POST"]),
        ]

    # ------------------------------------------------------------------ the common path

    async def _handle(self, request: Request, protocol: str, endpoint: str, poll: bool,
                      handler: Callable[[], Awaitable[Response]]) -> Response:
        """Count a batch request, answer it with a 503 under the outage and poll-error knobs, else run it."""
        st = self.state
        st.requests += 1
        st.by_endpoint[endpoint] += 1
        f = st.faults
        down = f.batch_outage_s > 0 and time.monotonic() - st._outage_start < f.batch_outage_s
        if down or (poll and f.batch_poll_error_rate and st.rng.random() < f.batch_poll_error_rate):
            st.batch_unavailable += 1
            st.by_status[503] += 1
            return JSONResponse(_error_body(protocol, 503), status_code=503)
        response = await handler()
        st.by_status[response.status_code] += 1
        return response

    def _new_batch(self, provider: str, bid: str, items: list[Item], **kw: Any) -> Batch:
        st = self.state
        f = st.faults
        b = Batch(id=bid, provider=provider, items=items, created=time.time(), created_mono=time.monotonic(),
                  delay_s=f.batch_delay_s, failure_rate=f.batch_item_failure_rate,
                  expires=bool(f.batch_expiry_rate) and _unit(f"expire|{bid}") < f.batch_expiry_rate, **kw)
        st.batches[bid] = b
        st.batches_created += 1
        return b

    def _item(self, key: str | None, kind: str, body: dict[str, Any]) -> Item:
        st = self.state
        st.batch_items_submitted += 1
        submission = 0
        if key:
            st.submissions[key] += 1
            st.submission_no[key] += 1
            submission = st.submission_no[key]
        return Item(key=key, salt=key or json.dumps(body, sort_keys=True), kind=kind, body=body,
                    submission=submission)

    def _advance(self, b: Batch) -> None:
        """End a pending batch whose delay is over (its answers are computed now)."""
        if b.status == "pending" and time.monotonic() - b.created_mono >= b.delay_s:
            self._end(b, "expired" if b.expires else "completed")

    def _end(self, b: Batch, status: str) -> None:
        n = len(b.items)
        if status == "completed":
            answered = n
        elif status == "expired":
            answered = n // 2
        else:   # cancelled: the items its progress reached were answered
            progress = (time.monotonic() - b.created_mono) / b.delay_s if b.delay_s > 0 else 1.0
            answered = int(n * min(1.0, progress))
        not_run = {"expired": "expired", "cancelled": "canceled"}.get(status, "expired")
        for i, item in enumerate(b.items):
            if i < answered:
                self._run(b, item)
            else:
                item.outcome = not_run
            self.state.batch_items[item.outcome] += 1
        b.status = status
        b.ended = time.time()
        if b.provider == "openai":
            self._openai_files(b)

    def _call(self, b: Batch, item: Item) -> Call:
        rng = random.Random(item.salt)
        em = self.em
        if item.kind == "chat":
            return em.openai_chat_call(item.body, item.salt, rng)
        if item.kind == "responses":
            return em.openai_responses_call(item.body, item.salt, rng)
        if item.kind == "embeddings":
            return em.openai_embeddings_call(item.body, item.salt, rng)
        if item.kind == "messages":
            return em.anthropic_messages_call(item.body, item.salt, rng)
        return em.gemini_generate_call(b.model, item.body, item.salt, rng)

    def _run(self, b: Batch, item: Item) -> None:
        """Answer one item, as the realtime endpoint answers the same body and key."""
        if b.failure_rate and _unit(f"fail|{item.salt}|{item.submission}") < b.failure_rate:
            item.outcome, item.error = "errored", _failure(b.provider)
            return
        try:
            item.response = self.em.complete(self._call(b, item), item.key)
            item.outcome = "succeeded"
        except RequestRefused as exc:
            item.outcome, item.error = "errored", (exc.status, exc.body)
        except Exception as exc:  # noqa: BLE001 - a malformed item errors alone, as on the real APIs
            item.outcome = "errored"
            message = f"invalid request: {type(exc).__name__}: {exc}"[:300]
            if b.provider == "openai":
                item.error = (400, _openai_error(message))
            elif b.provider == "anthropic":
                item.error = (400, _anthropic_error(message))
            else:
                item.error = (400, {"code": 400, "message": message, "status": "INVALID_ARGUMENT"})

    async def _json(self, request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    # ------------------------------------------------------------------ OpenAI: files

    async def openai_file_upload(self, request: Request) -> Response:
        async def run() -> Response:
            fields = _multipart(request.headers.get("content-type", ""), await request.body())
            if "file" not in fields:
                return JSONResponse(_openai_error("'file' is a required property"), status_code=400)
            purpose = (fields.get("purpose") or (None, b"batch"))[1].decode("utf-8", "replace").strip()
            filename, data = fields["file"]
            f = File(id=f"file-{_hex()}", filename=filename or "upload.jsonl", purpose=purpose, data=data)
            self.state.files[f.id] = f
            return JSONResponse(f.obj())

        return await self._handle(request, "openai", "file_upload", False, run)

    async def openai_file_get(self, request: Request) -> Response:
        async def run() -> Response:
            f = self.state.files.get(request.path_params["file_id"])
            if f is None:
                return JSONResponse(_openai_error("No such File object"), status_code=404)
            return JSONResponse(f.obj())

        return await self._handle(request, "openai", "file_get", True, run)

    async def openai_file_content(self, request: Request) -> Response:
        async def run() -> Response:
            f = self.state.files.get(request.path_params["file_id"])
            if f is None:
                return JSONResponse(_openai_error("No such File object"), status_code=404)
            return Response(f.data, media_type="application/octet-stream")

        return await self._handle(request, "openai", "file_content", True, run)

    # ------------------------------------------------------------------ OpenAI: batches

    def _openai_create(self, body: Any) -> Response:
        if not isinstance(body, dict):
            return JSONResponse(_openai_error("the body must be a JSON object"), status_code=400)
        endpoint = str(body.get("endpoint") or "")
        if endpoint not in OPENAI_URLS:
            return JSONResponse(_openai_error(f"unsupported endpoint {endpoint!r}"), status_code=400)
        if body.get("completion_window") != "24h":
            return JSONResponse(_openai_error("completion_window must be '24h'"), status_code=400)
        f = self.state.files.get(str(body.get("input_file_id") or ""))
        if f is None:
            return JSONResponse(_openai_error("input_file_id: no such file", code="invalid_file"), status_code=400)
        items: list[Item] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        model = ""
        for n, raw in enumerate(f.data.decode("utf-8", "replace").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                errors.append({"code": "invalid_json_line", "message": "This line is not parseable as JSON.",
                               "line": n, "param": None})
                continue
            key = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(key, str) or not key:
                errors.append({"code": "missing_required_parameter", "message": "custom_id is required",
                               "line": n, "param": "custom_id"})
            elif key in seen:
                errors.append({"code": "duplicate_custom_id", "message": "custom_id values must be unique",
                               "line": n, "param": "custom_id"})
            elif line.get("url") != endpoint or str(line.get("method", "")).upper() != "POST":
                errors.append({"code": "mismatched_endpoint", "message": f"every line must be POST {endpoint}",
                               "line": n, "param": "url"})
            elif not isinstance(line.get("body"), dict):
                errors.append({"code": "missing_required_parameter", "message": "body is required",
                               "line": n, "param": "body"})
            else:
                seen.add(key)
                model = model or str(line["body"].get("model") or "")
                items.append(self._item(key, OPENAI_URLS[endpoint], line["body"]))
        if not items and not errors:
            errors.append({"code": "empty_file", "message": "the input file has no requests", "line": None,
                           "param": None})
        b = self._new_batch("openai", f"batch_{_hex(32)}", items, model=model, endpoint=endpoint,
                            input_file_id=f.id, metadata=body.get("metadata"))
        if errors:
            b.status, b.ended, b.errors = "failed", b.created, errors
        return JSONResponse(self._openai_obj(b))

    def _openai_files(self, b: Batch) -> None:
        """The output and error files of an ended batch (each only when it has lines)."""
        out, err = [], []
        for item in b.items:
            rid = f"batch_req_{hashlib.sha256((b.id + item.salt).encode()).hexdigest()[:32]}"
            req_id = f"req_{hashlib.sha256((rid + 'r').encode()).hexdigest()[:32]}"
            if item.outcome == "succeeded":
                out.append({"id": rid, "custom_id": item.key, "response": {"status_code": 200, "request_id": req_id,
                                                                           "body": item.response}, "error": None})
            elif item.outcome == "errored" and item.error is not None:
                err.append({"id": rid, "custom_id": item.key, "response": {"status_code": item.error[0],
                                                                           "request_id": req_id,
                                                                           "body": item.error[1]}, "error": None})
            else:
                code = "batch_expired" if item.outcome == "expired" else "batch_cancelled"
                why = "expired before" if item.outcome == "expired" else "was cancelled before"
                err.append({"id": rid, "custom_id": item.key, "response": None,
                            "error": {"code": code, "message": f"This request could not be executed: the batch {why}"
                                                               " it was run."}})
        for lines, attr, purpose in ((out, "output_file_id", "batch_output"), (err, "error_file_id", "batch_output")):
            if lines:
                data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
                kind = "output" if attr == "output_file_id" else "error"
                f = File(id=f"file-{_hex()}", filename=f"{b.id}_{kind}.jsonl", purpose=purpose, data=data)
                self.state.files[f.id] = f
                setattr(b, attr, f.id)

    def _openai_obj(self, b: Batch) -> dict[str, Any]:
        created = int(b.created)
        ended = int(b.ended) if b.ended is not None else None
        status = "in_progress" if b.status == "pending" else b.status
        return {
            "id": b.id, "object": "batch", "endpoint": b.endpoint, "model": b.model or None,
            "input_file_id": b.input_file_id, "completion_window": "24h", "status": status,
            "created_at": created, "in_progress_at": created if b.status != "failed" else None,
            "expires_at": created + DAY_S,
            "finalizing_at": ended if b.status == "completed" else None,
            "completed_at": ended if b.status == "completed" else None,
            "failed_at": ended if b.status == "failed" else None,
            "expired_at": ended if b.status == "expired" else None,
            "cancelling_at": int(b.cancelled_at) if b.cancelled_at is not None else None,
            "cancelled_at": ended if b.status == "cancelled" else None,
            "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
            "request_counts": {"total": len(b.items), "completed": b.count("succeeded"), "failed": b.count("errored")},
            "metadata": b.metadata or {},
            "errors": {"object": "list", "data": b.errors} if b.errors else None,
        }

    def _openai_list(self, request: Request) -> Response:
        q = request.query_params
        mine = [b for b in reversed(self.state.batches.values()) if b.provider == "openai"]
        for b in mine:
            self._advance(b)
        after = q.get("after")
        if after:
            ids = [b.id for b in mine]
            mine = mine[ids.index(after) + 1:] if after in ids else []
        limit = max(1, min(100, int(q.get("limit") or 20)))
        page = mine[:limit]
        data = [self._openai_obj(b) for b in page]
        return JSONResponse({"object": "list", "data": data, "first_id": page[0].id if page else None,
                             "last_id": page[-1].id if page else None, "has_more": len(mine) > limit})

    def _openai_batch(self, bid: str) -> Batch | None:
        b = self.state.batches.get(bid)
        return b if b is not None and b.provider == "openai" else None

    def _openai_get(self, bid: str) -> Response:
        b = self._openai_batch(bid)
        if b is None:
            return JSONResponse(_openai_error(f"No batch found with id '{bid}'."), status_code=404)
        self._advance(b)
        return JSONResponse(self._openai_obj(b))

    def _openai_cancel(self, bid: str) -> Response:
        b = self._openai_batch(bid)
        if b is None:
            return JSONResponse(_openai_error(f"No batch found with id '{bid}'."), status_code=404)
        self._advance(b)
        if b.status == "pending":
            b.cancelled_at = time.time()
            self._end(b, "cancelled")
        return JSONResponse(self._openai_obj(b))

    # ------------------------------------------------------------------ /{version}/batches (OpenAI or Gemini)

    def _is_google(self, request: Request, bid: str | None = None) -> bool:
        if bid is not None and bid in self.state.batches:
            return bool(self.state.batches[bid].provider == "google")
        if request.path_params.get("version") != "v1":
            return True
        return "x-goog-api-key" in request.headers or "authorization" not in request.headers

    async def batches_root(self, request: Request) -> Response:
        google = self._is_google(request)
        if request.method == "POST":
            if google:
                return JSONResponse(_google_error(404, "create a batch with models/{model}:batchGenerateContent",
                                                  "NOT_FOUND"), status_code=404)

            async def create() -> Response:
                return self._openai_create(await self._json(request))

            return await self._handle(request, "openai", "batch_create", False, create)
        if google:
            async def glist() -> Response:
                return self._gemini_list(request)

            return await self._handle(request, "google", "batch_list", True, glist)

        async def olist() -> Response:
            return self._openai_list(request)

        return await self._handle(request, "openai", "batch_list", True, olist)

    async def batches_one(self, request: Request) -> Response:
        rest = request.path_params["rest"]
        if request.method == "POST":
            if rest.endswith(":cancel"):
                bid = rest[: -len(":cancel")]

                async def gcancel() -> Response:
                    return self._gemini_cancel(bid)

                return await self._handle(request, "google", "batch_cancel", False, gcancel)
            if rest.endswith("/cancel"):
                bid = rest[: -len("/cancel")]

                async def ocancel() -> Response:
                    return self._openai_cancel(bid)

                return await self._handle(request, "openai", "batch_cancel", False, ocancel)
            return JSONResponse(_openai_error("not found"), status_code=404)
        if self._is_google(request, rest):
            async def gget() -> Response:
                return self._gemini_get(rest)

            return await self._handle(request, "google", "batch_get", True, gget)

        async def oget() -> Response:
            return self._openai_get(rest)

        return await self._handle(request, "openai", "batch_get", True, oget)

    # ------------------------------------------------------------------ Anthropic

    def _anthropic_obj(self, b: Batch, request: Request) -> dict[str, Any]:
        ended = b.status != "pending"
        counts = {"processing": 0 if ended else len(b.items), "succeeded": b.count("succeeded"),
                  "errored": b.count("errored"), "canceled": b.count("canceled"), "expired": b.count("expired")}
        results_url = None
        if ended:
            results_url = f"{str(request.base_url).rstrip('/')}/v1/messages/batches/{b.id}/results"
        return {
            "id": b.id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts, "created_at": _iso(b.created), "expires_at": _iso(b.created + DAY_S),
            "ended_at": _iso(b.ended), "cancel_initiated_at": _iso(b.cancelled_at), "archived_at": None,
            "results_url": results_url,
        }

    def _anthropic_batch(self, bid: str) -> Batch | None:
        b = self.state.batches.get(bid)
        return b if b is not None and b.provider == "anthropic" else None

    def _anthropic_missing(self, bid: str) -> Response:
        return JSONResponse(_anthropic_error(f"batch {bid!r} not found", "not_found_error"), status_code=404)

    async def anthropic_batches(self, request: Request) -> Response:
        if request.method == "POST":
            async def create() -> Response:
                return self._anthropic_create(request, await self._json(request))

            return await self._handle(request, "anthropic", "batch_create", False, create)

        async def listing() -> Response:
            return self._anthropic_list(request)

        return await self._handle(request, "anthropic", "batch_list", True, listing)

    def _anthropic_create(self, request: Request, body: Any) -> Response:
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return JSONResponse(_anthropic_error("requests: a non-empty list is required"), status_code=400)
        keys = [r.get("custom_id") if isinstance(r, dict) else None for r in reqs]
        for i, (r, key) in enumerate(zip(reqs, keys, strict=True)):
            if not isinstance(key, str) or not key or not isinstance(r.get("params"), dict):
                return JSONResponse(_anthropic_error(f"requests.{i}: custom_id and params are required"),
                                    status_code=400)
        if len(set(keys)) != len(keys):
            return JSONResponse(_anthropic_error("requests: custom_id values must be unique"), status_code=400)
        items = [self._item(r["custom_id"], "messages", r["params"]) for r in reqs]
        model = str(reqs[0]["params"].get("model") or "")
        b = self._new_batch("anthropic", f"msgbatch_{_hex(26)}", items, model=model)
        return JSONResponse(self._anthropic_obj(b, request))

    def _anthropic_list(self, request: Request) -> Response:
        q = request.query_params
        mine = [b for b in reversed(self.state.batches.values()) if b.provider == "anthropic"]
        for b in mine:
            self._advance(b)
        ids = [b.id for b in mine]
        limit = max(1, min(1000, int(q.get("limit") or 20)))
        if q.get("after_id"):
            start = ids.index(q["after_id"]) + 1 if q["after_id"] in ids else len(ids)
            page, more = mine[start:start + limit], len(mine) > start + limit
        elif q.get("before_id"):
            stop = ids.index(q["before_id"]) if q["before_id"] in ids else 0
            page, more = mine[max(0, stop - limit):stop], stop - limit > 0
        else:
            page, more = mine[:limit], len(mine) > limit
        return JSONResponse({"data": [self._anthropic_obj(b, request) for b in page], "has_more": more,
                             "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None})

    async def anthropic_get(self, request: Request) -> Response:
        bid = request.path_params["batch_id"]

        async def run() -> Response:
            b = self._anthropic_batch(bid)
            if b is None:
                return self._anthropic_missing(bid)
            self._advance(b)
            return JSONResponse(self._anthropic_obj(b, request))

        return await self._handle(request, "anthropic", "batch_get", True, run)

    async def anthropic_cancel(self, request: Request) -> Response:
        bid = request.path_params["batch_id"]

        async def run() -> Response:
            b = self._anthropic_batch(bid)
            if b is None:
                return self._anthropic_missing(bid)
            self._advance(b)
            if b.status == "pending":
                b.cancelled_at = time.time()
                self._end(b, "cancelled")
            return JSONResponse(self._anthropic_obj(b, request))

        return await self._handle(request, "anthropic", "batch_cancel", False, run)

    async def anthropic_results(self, request: Request) -> Response:
        bid = request.path_params["batch_id"]

        async def run() -> Response:
            b = self._anthropic_batch(bid)
            if b is None:
                return self._anthropic_missing(bid)
            self._advance(b)
            if b.status == "pending":
                return JSONResponse(_anthropic_error(f"batch {bid!r} is still processing; no results yet"),
                                    status_code=400)
            lines = []
            for item in b.items:
                result: dict[str, Any]
                if item.outcome == "succeeded":
                    result = {"type": "succeeded", "message": item.response}
                elif item.outcome == "errored" and item.error is not None:
                    result = {"type": "errored", "error": item.error[1]}
                else:
                    result = {"type": item.outcome}
                lines.append(json.dumps({"custom_id": item.key, "result": result}, ensure_ascii=False) + "\n")
            return Response("".join(lines).encode("utf-8"), media_type="application/x-jsonl")

        return await self._handle(request, "anthropic", "batch_results", True, run)

    # ------------------------------------------------------------------ Gemini

    async def gemini_create(self, request: Request, model: str) -> Response:
        """``POST /v1beta/models/{model}:batchGenerateContent`` (inlined requests only)."""
        async def run() -> Response:
            body = await self._json(request)
            batch = body.get("batch") if isinstance(body, dict) else None
            if not isinstance(batch, dict):
                return JSONResponse(_google_error(400, "batch is required", "INVALID_ARGUMENT"), status_code=400)
            cfg = batch.get("inputConfig") or batch.get("input_config") or {}
            reqs = ((cfg.get("requests") or {}).get("requests")) if isinstance(cfg, dict) else None
            if not isinstance(reqs, list) or not reqs:
                why = "input files are not emulated; inline the requests" if cfg.get("fileName") else \
                    "inputConfig.requests.requests must be a non-empty list"
                return JSONResponse(_google_error(400, why, "INVALID_ARGUMENT"), status_code=400)
            items = []
            for r in reqs:
                req = (r.get("request") if isinstance(r, dict) else None) or {}
                meta = (r.get("metadata") if isinstance(r, dict) else None) or {}
                key = meta.get("key") if isinstance(meta, dict) else None
                items.append(self._item(str(key) if key else None, "generateContent", req))
                items[-1].metadata = meta if isinstance(meta, dict) else None
            b = self._new_batch("google", _hex(32), items, model=model,
                                display_name=str(batch.get("displayName") or batch.get("display_name") or ""))
            return JSONResponse(self._gemini_obj(b, created=True))

        return await self._handle(request, "google", "batch_create", False, run)

    def _gemini_obj(self, b: Batch, created: bool = False) -> dict[str, Any]:
        ended = b.status != "pending"
        if created and not ended:
            state = "BATCH_STATE_PENDING"
        else:
            state = {"pending": "BATCH_STATE_RUNNING", "completed": "BATCH_STATE_SUCCEEDED",
                     "expired": "BATCH_STATE_EXPIRED", "cancelled": "BATCH_STATE_CANCELLED",
                     "failed": "BATCH_STATE_FAILED"}[b.status]
        n = len(b.items)
        meta: dict[str, Any] = {
            "@type": GEMINI_BATCH_TYPE, "name": f"batches/{b.id}", "displayName": b.display_name,
            "model": f"models/{b.model}", "state": state, "createTime": _iso(b.created),
            "updateTime": _iso(b.ended or b.created),
            "batchStats": {"requestCount": str(n), "successfulRequestCount": str(b.count("succeeded")),
                           "failedRequestCount": str(n - b.count("succeeded") if ended else 0),
                           "pendingRequestCount": str(0 if ended else n)},
        }
        out: dict[str, Any] = {"name": f"batches/{b.id}", "metadata": meta}
        if ended:
            meta["endTime"] = _iso(b.ended)
            responses = []
            for item in b.items:
                entry: dict[str, Any]
                if item.outcome == "succeeded":
                    entry = {"response": item.response}
                elif item.outcome == "errored" and item.error is not None:
                    err = item.error[1]
                    entry = {"error": err if "code" in err else {"code": item.error[0], "message": str(err),
                                                                  "status": "INTERNAL"}}
                elif item.outcome == "expired":
                    entry = {"error": {"code": 4, "message": "the batch expired before this request was run",
                                       "status": "DEADLINE_EXCEEDED"}}
                else:
                    entry = {"error": {"code": 1, "message": "the batch was cancelled before this request was run",
                                       "status": "CANCELLED"}}
                if item.metadata:
                    entry["metadata"] = item.metadata
                responses.append(entry)
            meta["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
            out["done"] = True
        return out

    def _gemini_batch(self, bid: str) -> Batch | None:
        b = self.state.batches.get(bid.removeprefix("batches/"))
        return b if b is not None and b.provider == "google" else None

    def _gemini_missing(self, bid: str) -> Response:
        return JSONResponse(_google_error(404, f"batch {bid!r} not found", "NOT_FOUND"), status_code=404)

    def _gemini_get(self, bid: str) -> Response:
        b = self._gemini_batch(bid)
        if b is None:
            return self._gemini_missing(bid)
        self._advance(b)
        return JSONResponse(self._gemini_obj(b))

    def _gemini_cancel(self, bid: str) -> Response:
        b = self._gemini_batch(bid)
        if b is None:
            return self._gemini_missing(bid)
        self._advance(b)
        if b.status == "pending":
            b.cancelled_at = time.time()
            self._end(b, "cancelled")
        return JSONResponse({})

    def _gemini_list(self, request: Request) -> Response:
        q = request.query_params
        mine = [b for b in reversed(self.state.batches.values()) if b.provider == "google"]
        for b in mine:
            self._advance(b)
        start = int(q.get("pageToken") or 0)
        size = max(1, min(1000, int(q.get("pageSize") or 50)))
        page = mine[start:start + size]
        out: dict[str, Any] = {"operations": [self._gemini_obj(b) for b in page]}
        if len(mine) > start + size:
            out["nextPageToken"] = str(start + size)
        return JSONResponse(out)
