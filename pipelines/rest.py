"""The ASGI application that ``leadtier serve`` runs under uvicorn: MLflow's own scoring app
(``mlflow.pyfunc.scoring_server``, the one ``mlflow models serve`` runs) behind two limits.

* A request body larger than ``serve.max_request_mb`` is answered 413 without being read: at once when
  its ``Content-Length`` says so, or as soon as a chunked body passes the limit. The server never holds
  more than the limit of any one request.
* An error answer never echoes the request. MLflow's messages quote the body they could not parse, or
  the frame they could not score; the answer keeps MLflow's status and error code and the message without
  them (a 400 for a missing feature column still names the column), at most ``MAX_MESSAGE`` characters,
  without a stack trace.

uvicorn imports this module in each worker: the model comes from the environment variable MLflow's
app reads (``__pyfunc_model_path__``), the limit from ``LEADTIER_SERVE_MAX_BYTES``.
"""

from __future__ import annotations

import json
import os
import re

from leadtier.models.text import clip

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


class RequestLimits:
    """ASGI middleware: the body-size cap and the error answers described in the module docstring."""

    def __init__(self, app, max_bytes: int):
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive number of bytes. Got {max_bytes} instead")
        self.app = app
        self.max_bytes = int(max_bytes)

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
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message  # an error answer: rewritten once complete
                return None
            if held is None:
                return await send(message)
            if message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._rewrite(send, held, b"".join(parts), body)
            return None

        return await self.app(scope, replay, guarded_send)

    async def _rewrite(self, send, start: dict, answer: bytes, request: bytes) -> None:
        if start["status"] == 415:  # MLflow names the content type it was sent, header parameters included
            message = "unsupported content type: send application/json, text/csv or application/x-parquet, in UTF-8"
            return await _answer(send, 415, "UNSUPPORTED_MEDIA_TYPE", message)
        try:
            error = json.loads(answer)
            code, message = str(error.get("error_code", "BAD_REQUEST")), str(error.get("message", ""))
        except (ValueError, AttributeError):  # text/plain answers (415: unsupported content type)
            code, message = "BAD_REQUEST", answer.decode("utf-8", "replace")
        await _answer(send, start["status"], code, without_request(message, request))


def _app():
    from mlflow.pyfunc.scoring_server.app import app as scoring_app  # loads the model named in the environment

    return RequestLimits(scoring_app, int(os.environ[MAX_BYTES_ENV]))


def __getattr__(name: str):
    if name == "app":  # built on first use by uvicorn, so that importing this module loads no model
        value = globals()["app"] = _app()
        return value
    raise AttributeError(name)
