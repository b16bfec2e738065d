"""Tollgate's SDK for Python services.

The very same validator, revocation feed, introspection breaker, plans and
limits, WebSocket rules and test issuer as the Rust SDK (``tollgate-client``),
embedded through a Rust extension: Python never re-implements a check.

- :class:`Authenticator` judges tokens (``authenticate`` /
  ``authenticate_async``) and returns a frozen :class:`Principal` or raises
  :class:`AuthError` with the contract's stable ``code``.
- :class:`Requirements`: what a route needs (token type, scopes, roles,
  permissions).
- :class:`ToolGate`: tool permissions, per-plan rates and usage counts.
- :class:`ServiceTokenSource`: this service's own tokens for calling others.
- :class:`WsAuth`: WebSocket authentication (CONTRACT §6); the ASGI glue is
  :mod:`tollgate.asgi`.
- Framework glue: :mod:`tollgate.fastapi`, :mod:`tollgate.asgi`;
  tests: :mod:`tollgate.testing` (``TestIssuer`` and a pytest fixture).
"""

from ._errors import AuthError
from ._native import (
    MAX_MESSAGE_BYTES,
    MAX_TOKEN_BYTES,
    Authenticator,
    Principal,
    Requirements,
    ServiceTokenSource,
    ToolGate,
    WsAuth,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_TOKEN_BYTES",
    "AuthError",
    "Authenticator",
    "Principal",
    "Requirements",
    "ServiceTokenSource",
    "ToolGate",
    "WsAuth",
]
