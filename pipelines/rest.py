"""The ASGI application that ``leadtier serve`` runs under uvicorn: MLflow's own scoring app
(``mlflow.pyfunc.scoring_server``, the one ``mlflow models serve`` runs) behind two limits.

* A request body larger than ``serve.max_request_mb`` is answered 413 without being read: at once when
  its ``Content-Length`` says so, or as soon as a chunked body passes the limit. The server never holds
  more than the limit of any one request.
* A JSON request is checked against the model's input schema before MLflow reads it, since MLflow would
  score it anyway: a column the model does not know, a column named twice, a row of ``dataframe_split``
  with fewer or more values than ``columns`` (pandas would pad it with nulls), a number or true/false in a
  text column (it would be scored as an unseen category) are each a 400 naming the column or row.
* An error answer never echoes the request. MLflow's messages quote the body they could not parse, or
  the frame they could not score; the answer keeps MLflow's status and error code and the message without
  them (a 400 for a missing feature column still names the column), at most ``MAX_MESSAGE`` characters,
  without a stack trace.
* A JSON request (``dataframe_split`` or ``dataframe_records``) with text values the model never saw in
  training is scored, and the answer says so, as batch ``predict`` warns of them: ``warnings`` beside
  ``predictions``, one line per column with the rows, never the values.

uvicorn imports this module in each worker: the model comes from the environment variable MLflow's
app reads (``__pyfunc_model_path__``), the limit from ``LEADTIER_SERVE_MAX_BYTES``.
"""

from __future__ import annotations

import json
import math
import os
import re

from leadtier.features.meta import meta_of
from leadtier.models.text import clip
from mlflow.exceptions import MlflowException

MAX_BYTES_ENV = "LEADTIER_SERVE_MAX_BYTES"
MAX_MESSAGE = 500


def _headers(scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


async def _answer(send, status: int, error_code: str, message: str) -> None:
    body = json.dumps({"error_code": error_code, "message": message}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


_QUOTED = re.compile(r"'([^'\"]*)'|\"([^'\"]*)\"")  # innermost quoted text: where MLflow and pandas put values
_DECODE_ERROR = re.compile(r"Error: '(UnicodeDecodeError|UnicodeError)\(.*", re.DOTALL)


def without_request(message: str, body: bytes) -> str:
    """MLflow's error ``message`` without the request data it quotes, on one line, bounded."""
    if "\nInput:" in message:  # "Ensure that input is a valid JSON formatted string. Error: ...\nInput: \n<body>"
        message = message.split("\nInput:", 1)[0]
    message = _DECODE_ERROR.sub("Error: the body is not UTF-8 text", message)  # its repr holds the bytes
    if message.startswith(("Failed to predict data", "Failed to enforce schema of data")) and "Error: " in message:
        message = message.rsplit("Error: ", 1)[1]  # "Failed to predict data '<frame>'. \nError: <why>"
    text = body.decode("utf-8", "replace")
    values = request_values(text)

    def masked(m: re.Match) -> str:
        value = m.group(1) if m.group(1) is not None else m.group(2)
        return "'<a value of the request>'" if value and value in values else m.group(0)

    message = _QUOTED.sub(masked, message)
    message = clip(" ".join(message.split()), MAX_MESSAGE)
    if len(text) >= 16 and text in message:  # whatever MLflow says, never the request itself
        message = "the request could not be scored (its content is not repeated here)"
    return message


def request_values(text: str) -> str:
    """The request's cell values, one per line, without its column names (a missing column named in an
    error is no secret, even when it is part of a name the request sends): the leaves of a JSON body
    except ``columns`` and object keys, a CSV body below its header; otherwise (malformed JSON, Parquet)
    the whole text."""
    try:
        doc = json.loads(text)
    except ValueError:
        csv = "\n" in text and not text.startswith("PAR1") and text.lstrip()[:1] not in ("{", "[")
        return text.split("\n", 1)[1] if csv else text
    leaves: list[str] = []

    def walk(node, key: str | None = None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            if key != "columns":
                for item in node:
                    walk(item)
        elif node is not None:
            leaves.append(str(node))

    walk(doc)
    return "\n".join(leaves)


ID_COLUMN = "customer_id"  # accepted beside the features, as batch predict's input has it
IGNORED = "ignored"  # the type of a feature-table column the model does not read (input_schema)


def request_problem(text: str, schema: dict[str, str]) -> str | None:
    """What is wrong with a JSON request body ``text`` for a model whose inputs are ``schema`` (column ->
    'string' or 'double'), or None (also for what MLflow itself refuses clearly: malformed JSON, other
    formats). Names columns and row numbers (0-based), never values."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    table = _table(doc)
    if table is None:
        return None
    columns, rows = table
    if isinstance(doc.get("dataframe_split"), dict):
        data = doc["dataframe_split"]["data"]
        short = [i for i, row in enumerate(data) if isinstance(row, list) and len(row) != len(columns)]
        if short:
            return (
                f"dataframe_split: row {short[0]} has {len(data[short[0]])} values, columns has {len(columns)}"
                f"{f' ({len(short)} such rows)' if len(short) > 1 else ''}; every row needs one value per column"
            )
    named = list(columns)
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        return f"column(s) {twice} named more than once"
    unknown = [c for c in named if c not in schema and c != ID_COLUMN]
    if unknown:
        return (
            f"unknown column(s) {clip(str(unknown), 200)}; the model reads "
            f"{sum(t != IGNORED for t in schema.values())} feature columns "
            "(its signature in MLmodel lists them) and customer_id"
        )
    for c in named:
        if schema.get(c) == "string":
            bad = [i for i, r in enumerate(rows) if _number(r.get(c))]
            if bad:
                return (
                    f"column {c!r} holds text, but row {bad[0]} gives a number or true/false; "
                    "send it as a string, or null"
                )
        unit = _never_negative(c) if schema.get(c) not in (None, "string", IGNORED) else None
        if unit:
            bad = [i for i, r in enumerate(rows) if _number(r.get(c)) and r.get(c) < 0]
            if bad:
                return (
                    f"column {c!r} counts {unit}, never below 0 in the feature table `leadtier features` builds, "
                    f"but row {bad[0]} gives a negative number"
                )
    return None


def _table(doc) -> tuple[list[str], list[dict]] | None:
    """The column names (as sent, repeats kept) and the rows (column -> value) of a parsed JSON request in
    MLflow's ``dataframe_split`` or ``dataframe_records`` form; None for anything else (MLflow answers it)."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("dataframe_split"), dict):
        split = doc["dataframe_split"]
        columns, data = split.get("columns"), split.get("data")
        if not isinstance(columns, list) or not isinstance(data, list) or not all(isinstance(c, str) for c in columns):
            return None  # MLflow refuses it itself
        return columns, [dict(zip(columns, row, strict=False)) for row in data if isinstance(row, list)]
    if isinstance(doc.get("dataframe_records"), list):
        rows = [r for r in doc["dataframe_records"] if isinstance(r, dict)]
        return list(dict.fromkeys(k for r in rows for k in r)), rows
    return None


def unseen_notes(text: str, categories: dict[str, list[str]]) -> list[str]:
    """For a JSON request body ``text``: one note per text column whose values include some the model never
    saw in training (``categories``: column -> the values it learned), of which it has learned nothing, as
    batch ``predict`` warns. Names the column and rows (0-based), never the values."""
    try:
        table = _table(json.loads(text))
    except ValueError:
        return []
    if table is None:
        return []
    columns, rows = table
    notes = []
    for c in (c for c in dict.fromkeys(columns) if c in categories):
        known = set(categories[c])
        bad = [i for i, r in enumerate(rows) if isinstance(r.get(c), str) and r[c] not in known]
        if bad:
            shown = ", ".join(str(i) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            notes.append(f"column {c!r}: {len(bad)} row(s) with a value never seen in training (row {shown})")
    return notes


def _never_negative(column: str) -> str | None:
    """The unit of a feature column that is never negative (a count, days, an RFM score), or None."""
    found = meta_of(column)
    unit = found[0].unit if found else None
    return {"count": "events", "days": "days", "score": "score points"}.get(unit)  # durations: as the input has them


def _number(value) -> bool:
    """A JSON number or true/false, not NaN (which MLflow reads as missing)."""
    return isinstance(value, (bool, int)) or (isinstance(value, float) and not math.isnan(value))


def input_schema(model_path: str) -> dict[str, str]:
    """column -> type name of the model's input signature (empty without one), plus the feature table's
    columns the model does not read (``IGNORED``: excluded by config; MLflow ignores them)."""
    from leadtier.pipelines.tracking import NOT_READ_KEY
    from mlflow.models import Model

    model = Model.load(model_path)
    inputs = model.get_input_schema()
    if inputs is None:
        return {}
    return {c: IGNORED for c in (model.metadata or {}).get(NOT_READ_KEY, [])} | {
        c.name: c.type.name for c in inputs.inputs
    }


class RequestLimits:
    """ASGI middleware: the body-size cap, the request checks and the error answers described in the
    module docstring (``schema``: the model's input columns and types, as :func:`input_schema`)."""

    def __init__(
        self, app, max_bytes: int, schema: dict[str, str] | None = None, categories: dict[str, list[str]] | None = None
    ):
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive number of bytes. Got {max_bytes} instead")
        self.app = app
        self.max_bytes = int(max_bytes)
        self.schema = schema or {}
        self.categories = categories or {}

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes:,} bytes (serve.max_request_mb); send fewer rows"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _headers(scope).get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                return await _answer(send, 400, "BAD_REQUEST", "the Content-Length header is not a number")
            if int(length) > self.max_bytes:
                return await _answer(send, 413, "REQUEST_TOO_LARGE", self._too_large())
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _answer(send, 413, "REQUEST_TOO_LARGE", self._too_large())
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        kind = _headers(scope).get(b"content-type", b"").split(b";")[0].strip().lower()
        notes: list[str] = []
        if scope.get("method") == "POST" and kind == b"application/json":
            text = body.decode("utf-8", "replace")
            problem = request_problem(text, self.schema) if self.schema else None
            if problem:
                return await _answer(send, 400, "BAD_REQUEST", problem)
            notes = unseen_notes(text, self.categories) if self.categories else []
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        held: dict | None = None
        parts: list[bytes] = []

        async def guarded_send(message):
            nonlocal held
            if message["type"] == "http.response.start" and (message["status"] >= 400 or notes):
                held = message  # an error answer, or predictions to add notes to: rewritten once complete
                return None
            if held is None:
                return await send(message)
            if message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    if held["status"] >= 400:
                        await self._rewrite(send, held, b"".join(parts), body)
                    else:
                        await _with_warnings(send, held, b"".join(parts), notes)
            return None

        return await self.app(scope, replay, guarded_send)

    async def _rewrite(self, send, start: dict, answer: bytes, request: bytes) -> None:
        if start["status"] == 415:  # MLflow names the content type it was sent, header parameters included
            message = "unsupported content type: send application/json, text/csv or application/x-parquet, in UTF-8"
            return await _answer(send, 415, "UNSUPPORTED_MEDIA_TYPE", message)
        if start["status"] == 405:  # MLflow says nothing
            message = "method not allowed: score with POST /invocations; GET /ping or /health checks the server"
            return await _answer(send, 405, "METHOD_NOT_ALLOWED", message)
        try:
            error = json.loads(answer)
            code, message = str(error.get("error_code", "BAD_REQUEST")), str(error.get("message", ""))
        except (ValueError, AttributeError):  # text/plain answers (415: unsupported content type)
            code, message = "BAD_REQUEST", answer.decode("utf-8", "replace")
        await _answer(send, start["status"], code, without_request(message, request))


async def _with_warnings(send, start: dict, answer: bytes, notes: list[str]) -> None:
    """MLflow's successful ``answer`` with ``warnings`` (``notes``) beside its ``predictions``; as it was when
    it is not such a JSON object."""
    try:
        doc = json.loads(answer)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "predictions" in doc:
        answer = json.dumps({**doc, "warnings": notes}).encode("utf-8")
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    await send({**start, "headers": [*headers, (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


def known_categories(model) -> dict[str, list[str]]:
    """Text column -> the values the loaded pyfunc ``model`` learned in training (empty for a pyfunc that is
    not leadtier's)."""
    try:
        scorer = model.unwrap_python_model().scorer
    except (AttributeError, MlflowException):  # another kind of pyfunc: nothing to compare with
        return {}
    return dict(getattr(scorer.classifier, "categories_", {}))


def _app():
    from mlflow.pyfunc import scoring_server

    path = os.environ[scoring_server._SERVER_MODEL_PATH]
    model = scoring_server.load_model_with_mlflow_config(path)  # as MLflow's own app loads it, once
    return RequestLimits(
        scoring_server.init(model), int(os.environ[MAX_BYTES_ENV]), input_schema(path), known_categories(model)
    )


def __getattr__(name: str):
    if name == "app":  # built on first use by uvicorn, so that importing this module loads no model
        value = globals()["app"] = _app()
        return value
    raise AttributeError(name)
