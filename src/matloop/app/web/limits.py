"""A request-body size limit for the web app (an ASGI middleware).

A request whose ``Content-Length`` is over the limit is answered 413 before any of its body is
read; a request without one (chunked) is counted as it streams: at the first chunk that goes
over, the 413 is sent and the app is told the client disconnected, so it stops reading.
Either way the server holds at most about one limit's worth of body, never the whole upload.
The answer is one line of JSON: ``{"error": ..., "hint": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Default largest request body, bytes: JSON API requests (a chat message of 8000 characters,
#: a campaign request, an edited plan) are a few KB.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: The structure-file limit, :data:`matloop.materials.structures.MAX_STRUCTURE_BYTES` (repeated
#: here so the server starts without importing pymatgen; a test keeps the two equal).
MAX_STRUCTURE_BYTES = 5 * 1024 * 1024
#: Body limit to give a route that receives structure files: the structure-file limit plus
#: room for multipart framing and form fields.
STRUCTURE_UPLOAD_BYTES = MAX_STRUCTURE_BYTES + 256 * 1024


class BodyTooLarge(HTTPException):
    """A request body over the limit (HTTP 413)."""

    def __init__(self, limit: int, received: int | None = None) -> None:
        self.limit = limit
        self.received = received
        super().__init__(413, detail=self.message)

    @property
    def message(self) -> str:
        """One line saying how large the body is allowed to be."""
        size = (f"{self.received / 1024**2:.1f} MiB" if self.received is not None
                else "the request body")
        return f"{size} is over the {self.limit / 1024**2:.2f} MiB limit for this request"

    def payload(self) -> dict[str, str]:
        """The JSON answer."""
        return {"error": self.message,
                "hint": "send less data; structure files go one at a time and must be under "
                        f"{MAX_STRUCTURE_BYTES / 1024**2:.0f} MiB"}


class BodySizeLimit:
    """ASGI middleware capping request bodies.

    Args:
        app: The wrapped application.
        max_bytes: Limit for every path not in ``limits``.
        limits: Larger or smaller limits by path prefix (longest prefix wins), e.g.
            ``{"/api/uploads": STRUCTURE_UPLOAD_BYTES}``.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 limits: Mapping[str, int] | None = None) -> None:
        if max_bytes < 1 or any(v < 1 for v in (limits or {}).values()):
            raise ValueError("body limits must be positive byte counts")
        self.app = app
        self.max_bytes = max_bytes
        self.limits = sorted((limits or {}).items(), key=lambda kv: -len(kv[0]))

    def limit_for(self, path: str) -> int:
        """The body limit of a request path."""
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)),
                    self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 413 once its body goes over the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _reject(send, BodyTooLarge(limit, declared))
            return
        received = 0
        started = rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if started:
                        raise BodyTooLarge(limit)
                    # Answer now and tell the app the client went away: it stops reading,
                    # and whatever it still sends is dropped.
                    await _reject(send, BodyTooLarge(limit))
                    rejected = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started and not rejected:
                await _reject(send, exc)
        except Exception:
            if not rejected:  # an app error after the 413 was sent is only the disconnect
                raise


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Send, exc: BodyTooLarge) -> None:
    body = json.dumps(exc.payload()).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def body_too_large_response(exc: BodyTooLarge) -> Any:
    """The JSON response for a :class:`BodyTooLarge` raised inside the app."""
    from fastapi.responses import JSONResponse

    return JSONResponse(exc.payload(), status_code=413, headers={"connection": "close"})
