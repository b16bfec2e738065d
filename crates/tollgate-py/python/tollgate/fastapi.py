"""FastAPI glue: dependencies that authenticate a request with the
service's :class:`tollgate.Authenticator` and answer refusals exactly as the
Rust SDK's axum glue does (RFC 6750 ``WWW-Authenticate``, the contract's
JSON body ``{"error", "error_description"}``, ``Retry-After``).

::

    app = FastAPI()
    tollgate.fastapi.install(app, tollgate.Authenticator.from_env("my-service"))

    @app.get("/me")
    def me(user: tollgate.Principal = Depends(tollgate.fastapi.user())):
        return {"sub": user.sub}

    @app.get("/admin")
    async def admin(user = Depends(tollgate.fastapi.require(role="admin"))):
        ...

Dependencies are ``async`` and never block the event loop: a token judged
before comes back at once; one that needs the network (introspection, a key
fetch) is awaited on the extension's runtime. They serve sync and async
routes alike. Which header counts, how the bearer token is read, which
token type, scope, role or permission is needed, and what the refusal says
are all decided in Rust (``tollgate_client``); this module only wires them
into FastAPI.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Optional, Union

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ._errors import AuthError
from ._native import Authenticator, Principal, Requirements, ToolGate

__all__ = [
    "any_token",
    "authenticator",
    "error_response",
    "fingerprint",
    "health",
    "install",
    "require",
    "service",
    "tool_gate",
    "user",
]

Names = Union[str, Iterable[str], None]
Dependency = Callable[[Request], Awaitable[Principal]]


def install(app: FastAPI, authenticator: Authenticator, *, gate: Optional[ToolGate] = None) -> None:
    """Makes ``authenticator`` (and ``gate``) the app's, and answers every
    :class:`tollgate.AuthError` a route or dependency raises with the SDK's
    HTTP mapping. A service's tests install a ``TestIssuer``'s
    authenticator instead."""
    app.state.tollgate_authenticator = authenticator
    app.state.tollgate_gate = gate
    app.add_exception_handler(AuthError, _handle_auth_error)


def authenticator(app: FastAPI) -> Authenticator:
    """The authenticator :func:`install` gave ``app``."""
    try:
        return app.state.tollgate_authenticator
    except AttributeError:
        raise RuntimeError("call tollgate.fastapi.install(app, authenticator) first") from None


def tool_gate(app: FastAPI) -> ToolGate:
    """The tool gate :func:`install` gave ``app``."""
    gate = getattr(app.state, "tollgate_gate", None)
    if gate is None:
        raise RuntimeError("call tollgate.fastapi.install(app, authenticator, gate=...) first")
    return gate


def error_response(err: AuthError) -> JSONResponse:
    """The HTTP answer to ``err``: the status, headers and JSON body the
    Rust SDK's axum glue gives."""
    return JSONResponse(err.body, status_code=err.status, headers=err.headers)


async def _handle_auth_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, AuthError)
    return error_response(err)


def _names(value: Names) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _dependency(requirements: Requirements) -> Dependency:
    async def dependency(request: Request) -> Principal:
        auth = request.app.state.tollgate_authenticator
        return await auth.authenticate_request_async(request.scope["headers"], requirements)

    return dependency


def require(
    *,
    scope: Names = None,
    role: Names = None,
    tool: Names = None,
    permission: Names = None,
    expect: str = "access",
) -> Dependency:
    """A dependency requiring a token of type ``expect`` (``"access"``: a
    user's, the default; ``"service"``; ``"any"``) with every scope, role,
    ``tool:<name>`` permission and permission named (each a name or a list).
    Refusals: 401 for a missing or bad token, 403 ``insufficient_scope`` /
    ``permission_denied`` for what is missing, 503 when the token cannot be
    checked (fail closed)."""
    return _dependency(
        Requirements(
            expect,
            scopes=_names(scope),
            roles=_names(role),
            permissions=_names(permission),
            tools=_names(tool),
        )
    )


def user() -> Dependency:
    """A dependency requiring a user's access token (a service token is
    ``wrong_token_type``)."""
    return require(expect="access")


def service() -> Dependency:
    """A dependency requiring a service token (a user's is
    ``wrong_token_type``)."""
    return require(expect="service")


def any_token() -> Dependency:
    """A dependency accepting any valid token, user or service."""
    return require(expect="any")


async def fingerprint(request: Request) -> Any:
    """``GET /v1/fingerprint``: what this service trusts (CONTRACT §7)."""
    return authenticator(request.app).fingerprint()


async def health(request: Request) -> JSONResponse:
    """``GET /healthz``: the authenticator's state, 200 when healthy, 503
    when degraded (feed down, breaker open)."""
    auth = authenticator(request.app)
    return JSONResponse(auth.health(), status_code=200 if auth.is_healthy() else 503)
