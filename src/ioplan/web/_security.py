"""The server's guards, as one ASGI middleware: token, body size, headers, a clean log.

- **Token**: when the app has one, every request but ``GET /api/health`` and the static
  assets must carry it (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``; the query
  form is for what a browser cannot give headers to: the event stream, volume URLs).
- **Body size**: a request body larger than the limit is refused with 413, from its
  ``Content-Length`` before it is read, or while it streams.
- **Headers**: no CORS headers are ever added (the browser's same-origin rule stands),
  ``nosniff``, no referrer, no framing, and a content security policy of this origin.
- **Cross-site writes**: a POST, PUT, PATCH or DELETE whose ``Origin`` is not this server,
  or that the browser marks ``Sec-Fetch-Site: cross-site``, is refused (403): another
  site's page cannot import a case or start a job on a server on this machine.
- **Host names**: with ``allowed_hosts`` (``ioplan serve`` without a token sets the
  loopback names), a request for any other ``Host`` is refused (400), against DNS
  rebinding of a loopback server.
- **Log**: one line per request, ``METHOD /path status ms``: the path only, never the
  query string (it may hold the token) nor anything from the body.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from urllib.parse import parse_qs

__all__ = ["CSP", "GuardMiddleware", "log"]

log = logging.getLogger("ioplan.web")

#: Content security policy of every response (NiiVue needs WebGL, blob workers, wasm).
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data: blob:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
]
_OPEN_PATHS = ("/api/health", "/static/", "/favicon.ico")


async def _json_error(send, status: int, message: str, extra=()) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + list(extra) + _HEADERS})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _hostname(host: str) -> str:
    """``127.0.0.1:8000`` -> ``127.0.0.1``; ``[::1]:8000`` -> ``::1``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class GuardMiddleware:
    """Token check, body limit, security headers and the access log (see the module)."""

    def __init__(self, app, *, token: str | None, max_body_bytes: int,
                 allowed_hosts: frozenset[str] | None = None) -> None:  # fmt: skip
        self.app = app
        self.token = token
        self.max_body_bytes = int(max_body_bytes)
        self.allowed_hosts = allowed_hosts

    def _refusal(self, scope) -> tuple[int, str] | None:
        """``(status, message)`` for a request from the wrong host or another site."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.allowed_hosts is not None and _hostname(host) not in self.allowed_hosts:
            return 400, "unknown Host header (open the address ioplan serve printed)"
        if scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            origin = headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != host:
                return 403, "cross-site request refused"
            if headers.get("sec-fetch-site") == "cross-site":
                return 403, "cross-site request refused"
        return None

    def _authorised(self, scope) -> bool:
        if not self.token:
            return True
        path = scope.get("path", "")
        if path == "/api/health" or any(path.startswith(p) for p in _OPEN_PATHS[1:]):
            return True
        given = None
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                text = value.decode("latin-1")
                if text[:7].lower() == "bearer ":
                    given = text[7:].strip()
        if given is None:
            qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (qs.get("token") or [None])[0]
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 0, "started": False}

        seen = {"bytes": 0, "over": False}

        async def send_with_headers(message):
            if seen["over"]:  # the body was cut off: the 413 below answers instead
                return
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                message = dict(message, headers=list(message.get("headers", [])) + _HEADERS)
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                status["code"] = refusal[0]
                await _json_error(send, *refusal)
                return
            if not self._authorised(scope):
                status["code"] = 401
                message = "a token is required: Authorization: Bearer TOKEN or ?token=TOKEN"
                await _json_error(send, 401, message, [(b"www-authenticate", b"Bearer")])
                return
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                status["code"] = 413
                await _json_error(send, 413, self._too_large())
                return

            async def counted_receive():
                if seen["over"]:
                    return {"type": "http.disconnect"}
                message = await receive()
                if message["type"] == "http.request":
                    seen["bytes"] += len(message.get("body", b""))
                    if seen["bytes"] > self.max_body_bytes and not status["started"]:
                        # the app sees the client leave; its answer is dropped for a 413
                        seen["over"] = True
                        return {"type": "http.disconnect"}
                return message

            try:
                await self.app(scope, counted_receive, send_with_headers)
            except Exception:
                if not seen["over"]:
                    raise
            if seen["over"]:
                status["code"] = 413
                await _json_error(send, 413, self._too_large())
        finally:
            ms = 1000 * (time.perf_counter() - t0)
            log.info("%s %s %s %.0f ms", scope.get("method"), scope.get("path"), status["code"], ms)

    def _too_large(self) -> str:
        return f"request body larger than the limit of {self.max_body_bytes / 1e6:g} MB"
