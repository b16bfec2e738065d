"""fastapi-backend: the Python twin of chat-backend, protected only through
the ``tollgate`` package — the reference for how a Python service uses
Tollgate. Same routes, same WebSocket messages, same settings, same
``/v1/fingerprint``:

- ``GET /api/agents/status`` (any user): the caller, their tools, and the
  agents, fetched from the service-only route below with a service token;
- ``POST /api/tools/{tool}`` (a user with ``tool:<tool>``, within the plan's
  rate): runs a (pretend) tool and counts the call;
- ``GET /api/usage`` (any user): the caller's counts per tool;
- ``GET /api/admin/usage`` (role ``admin``): everyone's counts;
- ``GET /internal/agents`` (service tokens only);
- ``GET /ws`` (a user; CONTRACT §6): chat and tool calls over WebSocket,
  authenticated and supervised by the SDK (``tollgate.asgi``);
- ``GET``/``DELETE /v1/connections`` (service tokens with
  ``connections:admin``): operators list and close live WebSocket
  connections, answered by the SDK (``tollgate.asgi.ConnectionsEndpoint``);
- ``GET /v1/fingerprint`` (what this service trusts), ``GET /healthz``.

Everything about tokens goes through ``tollgate``: this package never sees
a key or a secret, and checks nothing itself. Tool permissions, rates and
counts are one ``ToolGate`` for REST and WebSocket.
"""

import json
from typing import Optional

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Route, WebSocketRoute

import tollgate
import tollgate.asgi
import tollgate.fastapi

from . import tools, ws
from .peer import Peer, PeerError

__all__ = ["create_app"]


def error(status: int, code: str, description: str) -> JSONResponse:
    """This service's own refusals, with the contract's body."""
    return JSONResponse({"error": code, "error_description": description}, status_code=status)


def create_app(
    authenticator: tollgate.Authenticator,
    gate: tollgate.ToolGate,
    *,
    peer_url: str,
    service_tokens: Optional[tollgate.ServiceTokenSource] = None,
    ws_auth: Optional[tollgate.WsAuth] = None,
) -> FastAPI:
    """The service over these pieces; a service's tests pass a
    ``TestIssuer``'s authenticator and service tokens."""
    app = FastAPI(title="fastapi-backend", openapi_url=None, docs_url=None, redoc_url=None)
    tollgate.fastapi.install(app, authenticator, gate=gate)
    peer = Peer(peer_url, service_tokens)
    ws_auth = ws_auth or tollgate.WsAuth(authenticator, gate=gate)
    app.state.ws_auth = ws_auth

    @app.exception_handler(HTTPException)
    async def not_found(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, "not_found", "no such route")
        return JSONResponse({"error": "invalid_request", "error_description": str(exc.detail)}, exc.status_code)

    @app.get("/api/agents/status")
    async def status(user: tollgate.Principal = Depends(tollgate.fastapi.user())):
        body = {"user": user.sub, "plan": user.plan, "tools": list(user.tools)}
        try:
            body["agents"] = await peer.agents()
        except PeerError as err:
            body["agents"] = None
            body["agents_error"] = str(err)
        return body

    @app.post("/api/tools/{tool}")
    async def call_tool(
        tool: str,
        request: Request,
        user: tollgate.Principal = Depends(tollgate.fastapi.user()),
    ):
        if not gate.offers(tool):
            return error(404, "unknown_tool", "no plan offers this tool")
        body = await request.body()
        text = ""
        if body:
            try:
                call = json.loads(body)
            except ValueError:
                call = None
            if not isinstance(call, dict) or set(call) - {"input"} or not isinstance(call.get("input", ""), str):
                return error(400, "invalid_request", 'the body must be a JSON object {"input": string}')
            text = call.get("input", "")
        await gate.admit_async(user, tool)
        calls = (await gate.usage_of_async(user.sub)).get(tool, 0)
        return {"tool": tool, "result": tools.run(tool, text), "calls": calls}

    @app.get("/api/usage")
    async def usage(user: tollgate.Principal = Depends(tollgate.fastapi.user())):
        return {"user": user.sub, "usage": await gate.usage_of_async(user.sub)}

    @app.get("/api/admin/usage")
    async def all_usage(admin: tollgate.Principal = Depends(tollgate.fastapi.require(role="admin"))):
        return {"usage": await gate.usage_all_async()}

    @app.get("/internal/agents")
    async def agents(caller: tollgate.Principal = Depends(tollgate.fastapi.service())):
        return {
            "caller": caller.sub,
            "agents": [
                {"name": "researcher", "status": "idle"},
                {"name": "writer", "status": "idle"},
            ],
        }

    app.add_api_route("/v1/fingerprint", tollgate.fastapi.fingerprint, methods=["GET"])
    app.add_api_route("/healthz", tollgate.fastapi.health, methods=["GET"])
    app.router.routes.append(
        Route("/v1/connections", tollgate.asgi.ConnectionsEndpoint(ws_auth), methods=["GET", "DELETE"])
    )
    app.router.routes.append(
        WebSocketRoute("/ws", tollgate.asgi.WebSocketEndpoint(ws_auth, ws.session(gate)))
    )
    return app
