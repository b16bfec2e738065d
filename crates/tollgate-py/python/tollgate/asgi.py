"""WebSocket authentication for ASGI servers (Starlette, FastAPI, uvicorn),
CONTRACT §6, exactly as the Rust SDK does it.

Every rule is the Rust SDK's (``tollgate_client::ws``), reached through
:class:`tollgate.WsAuth`: the origin allowlist, the token carriers
(``Authorization: Bearer``, ``jwt.<t>`` / ``jwt-auth.<t>`` subprotocol
entries) and which protocol the answer selects, the token's judgement, the
plan's connection limit, and on a live connection the expiry notice, the
in-band ``auth.refresh``, 4401 on expiry, 4403 on revocation, message size
and shape, 1001 on shutdown. This module only relays: it answers a refused
handshake with the HTTP response the SDK rendered (through the ASGI
``websocket.http.response`` extension, before any upgrade), accepts with the
selected protocol, and then moves frames between the ASGI connection and
the Rust supervisor.

Mount :class:`WebSocketEndpoint` as an ASGI app on a route::

    from starlette.routing import WebSocketRoute
    ws_auth = tollgate.WsAuth(authenticator, gate=gate)

    async def chat(connection: tollgate.asgi.Connection) -> None:
        async for message in connection:
            await connection.send({"type": "chat.reply", "text": message.get("text")})

    app.router.routes.append(WebSocketRoute("/ws", tollgate.asgi.WebSocketEndpoint(ws_auth, chat)))

and run under :func:`serve` (or call :meth:`tollgate.WsAuth.shutdown_async`
before the server's own shutdown) so that connections get 1001 first:
uvicorn itself closes WebSockets with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, MutableMapping, Optional

from . import _native
from ._errors import AuthError
from ._native import invalid_message

__all__ = [
    "AuthMiddleware",
    "Connection",
    "ConnectionsEndpoint",
    "WebSocketEndpoint",
    "invalid_message",
    "principal",
    "refuse",
    "serve",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_log = logging.getLogger("tollgate")


class Connection:
    """The handler's side of a live, supervised connection.

    ``recv`` yields the client's messages (JSON objects; ``auth.refresh`` is
    answered by the supervisor and never shows up here) and returns ``None``
    once the connection is closed; ``send`` queues a JSON message;
    ``principal`` is the caller as of the latest accepted token (a refresh
    may bring a new plan or permissions).
    """

    def __init__(self, native: _native.Connection) -> None:
        self._native = native

    async def recv(self) -> Optional[Dict[str, Any]]:
        """The next message from the client, or None once closed."""
        text = await self._native.recv()
        return None if text is None else json.loads(text)

    async def send(self, message: Any) -> bool:
        """Sends ``message`` (a JSON-serialisable object); False once closed."""
        return await self._native.send(message)

    @property
    def principal(self) -> Optional[_native.Principal]:
        """Who is connected (None once the connection is closed)."""
        return self._native.principal

    def close(self) -> None:
        """Ends the conversation: the supervisor closes with 1000."""
        self._native.close()

    def __aiter__(self) -> AsyncIterator[Dict[str, Any]]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Dict[str, Any]]:
        while True:
            message = await self.recv()
            if message is None:
                return
            yield message


Handler = Callable[[Connection], Awaitable[None]]


async def refuse(scope: Scope, send: Send, err: AuthError) -> None:
    """Refuses a WebSocket handshake with ``err``'s HTTP answer (401/403/…
    and the JSON body), before any upgrade. Servers without the
    ``websocket.http.response`` extension can only close (uvicorn has it)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": err.code})
        return
    body = json.dumps(err.body).encode()
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in err.headers.items()]
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "websocket.http.response.start", "status": err.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


class WebSocketEndpoint:
    """An ASGI app for one WebSocket route: the handshake judged by
    ``ws_auth``, then ``handler(connection)`` beside the Rust supervisor.
    The connection ends when either side does: the supervisor closing makes
    ``Connection.recv`` return None; the handler returning closes with 1000.
    """

    def __init__(self, ws_auth: _native.WsAuth, handler: Handler) -> None:
        self.ws_auth = ws_auth
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("tollgate.asgi.WebSocketEndpoint serves WebSocket routes only")
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            admission = await self.ws_auth.admit_async(scope)
        except AuthError as err:
            await refuse(scope, send, err)
            return
        try:
            await send({"type": "websocket.accept", "subprotocol": admission.protocol})
        except BaseException:
            admission.release()
            raise
        native, transport = admission.start()
        await _run(receive, send, Connection(native), transport, self.handler)


class AuthMiddleware:
    """ASGI middleware authenticating every HTTP request with
    ``authenticator`` against ``requirements`` (default: a user's access
    token), the fast way in for REST routes (issue 11): FastAPI's
    dependency machinery is skipped, and a token judged before is answered
    from memory without releasing the GIL or making an awaitable
    (:meth:`tollgate.Authenticator.authenticate_request_now`). The
    principal goes in ``scope["state"]["principal"]`` (Starlette's
    ``request.state.principal``; :func:`principal` reads it). A refusal is
    the same answer, byte for byte, as the dependency's
    (:func:`tollgate.fastapi.error_response`): 401/403/503, RFC 6750
    ``WWW-Authenticate``, the contract's JSON body. Paths in ``exempt``
    (exact matches, e.g. ``/healthz``) and non-HTTP scopes (lifespan,
    WebSockets, which :class:`WebSocketEndpoint` judges) pass through::

        app.add_middleware(tollgate.asgi.AuthMiddleware, authenticator=auth, exempt=["/healthz"])

        @app.get("/me")
        async def me(request: Request):
            return {"sub": tollgate.asgi.principal(request).sub}
    """

    def __init__(
        self,
        app: Any,
        authenticator: _native.Authenticator,
        *,
        requirements: Optional[_native.Requirements] = None,
        exempt: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.requirements = requirements
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        auth, headers, requirements = self.authenticator, scope["headers"], self.requirements
        try:
            found = auth.authenticate_request_now(headers, requirements)
            if found is None:
                found = await auth.authenticate_request_async(headers, requirements)
        except AuthError as err:
            await _send_refusal(send, err)
            return
        state = scope.get("state")
        if state is None:
            scope["state"] = {"principal": found}
        else:
            state["principal"] = found
        await self.app(scope, receive, send)


def principal(request: Any) -> _native.Principal:
    """The caller :class:`AuthMiddleware` authenticated for ``request`` (a
    Starlette/FastAPI ``Request`` or an ASGI scope). ``RuntimeError`` when
    the request did not go through the middleware (an exempt path, or no
    middleware): a programming error, never a judgement on a token."""
    scope = request if isinstance(request, MutableMapping) else request.scope
    try:
        return scope["state"]["principal"]
    except (KeyError, TypeError):
        raise RuntimeError("no principal: the route is not behind tollgate.asgi.AuthMiddleware") from None


async def _send_refusal(send: Send, err: AuthError) -> None:
    """``err``'s HTTP answer exactly as Starlette's ``JSONResponse`` renders
    it for :func:`tollgate.fastapi.error_response` (the same header order,
    the same JSON spelling), without building a response object."""
    body = json.dumps(err.body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in err.headers.items()]
    names = [name for name, _ in headers]
    if b"content-length" not in names:
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
    if b"content-type" not in names:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ConnectionsEndpoint:
    """An ASGI app for the operators' ``GET``/``DELETE /v1/connections``
    (issue 13, docs/api.md): the Rust SDK's ``ws::connections_router`` over
    ``ws_auth``'s live connections answers — the service token with scope
    ``connections:admin``, the strict query, the listing and the 4403
    closes are all the SDK's; this only relays the request head and the
    answer. Mount it for both methods::

        from starlette.routing import Route
        app.router.routes.append(
            Route("/v1/connections", tollgate.asgi.ConnectionsEndpoint(ws_auth), methods=["GET", "DELETE"]))
    """

    def __init__(self, ws_auth: _native.WsAuth) -> None:
        self.ws_auth = ws_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("tollgate.asgi.ConnectionsEndpoint serves HTTP routes only")
        status, headers, body = await self.ws_auth.connections_async(scope)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _run(
    receive: Receive,
    send: Send,
    connection: Connection,
    transport: _native.Transport,
    handler: Handler,
) -> None:
    """Relays frames both ways while the handler runs; returns once the
    supervisor and the handler are done."""

    async def from_client() -> None:
        try:
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.receive":
                    if event.get("text") is not None:
                        delivered = await transport.received_text(event["text"])
                    else:
                        delivered = await transport.received_bytes(event.get("bytes") or b"")
                    if not delivered:
                        return
                elif kind == "websocket.disconnect":
                    return
        finally:
            transport.disconnected()

    async def to_client() -> None:
        while True:
            frame = await transport.next_frame()
            if frame is None:
                return
            kind, payload, code = frame
            try:
                if kind == "text":
                    await send({"type": "websocket.send", "text": payload})
                else:
                    await send({"type": "websocket.close", "code": code, "reason": payload})
            except Exception:  # the socket is gone (uvicorn's ClientDisconnected, …)
                transport.disconnected()

    async def handle() -> None:
        try:
            await handler(connection)
        except Exception:
            _log.exception("a WebSocket handler failed; closing its connection")
        finally:
            connection.close()

    reader = asyncio.ensure_future(from_client())
    writer = asyncio.ensure_future(to_client())
    handling = asyncio.ensure_future(handle())
    try:
        # The supervisor is done when the writer is: after its close frame,
        # or because the socket is gone.
        await writer
        await handling
    finally:
        for task in (reader, writer, handling):
            task.cancel()
        for task in (reader, writer, handling):
            with contextlib.suppress(BaseException):
                await task
        transport.disconnected()
        connection.close()


def serve(app: Any, ws_auth: _native.WsAuth, *, grace: float = 5.0, **config: Any) -> None:
    """Runs ``app`` under uvicorn (``config``: ``uvicorn.Config``'s
    arguments, e.g. ``host``, ``port``) until SIGINT/SIGTERM; then every
    WebSocket is closed with 1001 (waiting at most ``grace`` seconds for them
    to end) before uvicorn's own shutdown, which would close them with
    1012. A signal is a clean shutdown: this returns (uvicorn would raise
    the signal again, ending the process by it)."""
    import signal
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        async def shutdown(self, sockets: Any = None) -> None:
            for server in self.servers:
                server.close()
            await ws_auth.shutdown_async(grace)
            await super().shutdown(sockets=sockets)

    Server(uvicorn.Config(app, **config)).run()
