"""Type stubs of ``tollgate._native``, the Rust extension (PyO3, abi3).

Every class wraps the Rust SDK (``tollgate-client``); no check is made in
Python. Blocking methods release the GIL while Rust works; ``*_async``
methods return awaitables that never block the event loop (an answer at
hand is returned at once; one that needs the network completes from the
extension's tokio runtime). A Rust panic never crosses into Python: it is
raised as ``tollgate.AuthError`` with code ``internal_error`` (status 500).
"""

from typing import Any, Awaitable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

Token = Union[str, bytes, None]
Environ = Mapping[str, str]
AsgiHeaders = Sequence[Tuple[bytes, bytes]]

MAX_TOKEN_BYTES: int
"""Tokens longer than this (8 KiB) are refused (``token_too_large``) before any decoding."""

MAX_MESSAGE_BYTES: int
"""The largest WebSocket message a supervised connection accepts (64 KiB); larger closes with 1009."""

class Authenticator:
    """Validates tokens for one service: the Rust SDK's ``Authenticator``.

    Discovery (RFC 8414) of the issuer, the JWKS cache (refetched at once
    for an unknown ``kid``, at most once per cool-down), the revocation feed
    (with client credentials), introspection behind a circuit breaker, and a
    cache of validated tokens (a cached token is still rechecked for time,
    type and revocation on every call). When the token service cannot be
    reached and nothing cached can answer, tokens are refused
    (``token_service_unavailable``): it fails closed.

    Settings resolve through Tollgate's one configuration builder, with the
    same names and aliases as every other piece: ``TOLLGATE_ISSUER``
    (``JWT_ISSUER``), ``TOLLGATE_AUDIENCE`` (``JWT_AUDIENCE``),
    ``TOLLGATE_CLIENT_ID``/``TOLLGATE_CLIENT_SECRET`` (``SERVICE_ID``/
    ``SERVICE_SECRET``), ``TOLLGATE_LEEWAY``, ``TOLLGATE_FEED_DOWN_POLICY``,
    ``TOLLGATE_ENV``, ``TOLLGATE_SIGNING_ALG``/``TOLLGATE_HMAC_SECRET``
    (HS256 deployments), … Keyword arguments beat the environment, as CLI
    flags do. Construction blocks (GIL released) until discovery and the
    first key fetch are done: build it at start-up.
    """

    def __init__(
        self,
        issuer: Optional[str] = None,
        audience: Union[str, Sequence[str], None] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        *,
        service_name: str = "service",
        environ: Optional[Environ] = None,
    ) -> None:
        """Builds an authenticator from these settings over ``environ`` (a
        mapping; default the process environment).

        Raises ``AuthError`` ``invalid_config`` (every problem, one per
        line: a missing issuer in production, two names of one setting that
        disagree, …), ``discovery_failed`` (the token service cannot be
        used or is not the configured issuer)."""

    @staticmethod
    def from_env(service_name: str = "service", *, environ: Optional[Environ] = None) -> "Authenticator":
        """An authenticator configured from the environment alone (see the
        class docs); ``service_name`` is what its fingerprint reports."""

    @property
    def issuer(self) -> str:
        """The issuer trusted (compared exactly)."""

    @property
    def audiences(self) -> Tuple[str, ...]:
        """The audiences accepted."""

    def authenticate(self, token: Token, expect: str = "access") -> "Principal":
        """Judges ``token`` as ``expect``: ``"access"`` (a user's token, the
        default), ``"service"`` or ``"any"``.

        Returns the frozen :class:`Principal`, or raises ``AuthError`` with
        the contract's code: ``missing_token`` (None), ``malformed`` (not a
        compact JWS, not ``str``/``bytes``, not UTF-8), ``token_too_large``
        (over 8 KiB), ``bad_signature``, ``unknown_key``, ``expired``,
        ``wrong_issuer``, ``wrong_audience``, ``wrong_token_type``,
        ``revoked``, ``inactive``, ``token_service_unavailable``, …
        Blocks while the network is needed (GIL released); use
        :meth:`authenticate_async` in async code."""

    def authenticate_async(self, token: Token, expect: str = "access") -> Awaitable["Principal"]:
        """The async twin of :meth:`authenticate`: an awaitable that never
        blocks the event loop. A token judged before is answered at once."""

    def authenticate_request(
        self, headers: AsgiHeaders, requirements: Optional["Requirements"] = None
    ) -> "Principal":
        """Judges the bearer token of an ASGI request's headers
        (``scope["headers"]``): exactly one ``Authorization: Bearer <t>``
        (none: ``missing_token``; two, or not Bearer: ``invalid_request``),
        then the ``requirements`` (default: a user's token)."""

    def authenticate_request_async(
        self, headers: AsgiHeaders, requirements: Optional["Requirements"] = None
    ) -> Awaitable["Principal"]:
        """The async twin of :meth:`authenticate_request`."""

    def authenticate_request_now(
        self, headers: AsgiHeaders, requirements: Optional["Requirements"] = None
    ) -> Optional["Principal"]:
        """:meth:`authenticate_request` when the answer is at hand, without
        releasing the GIL or making an awaitable: the ``Principal`` of a
        token judged before (checked against ``requirements``), or
        ``AuthError`` for a refusal known before any work (no token, a bad
        ``Authorization`` header) or of a cached token; ``None`` when the
        token needs a first judgement — then await
        :meth:`authenticate_request_async`. The fast path of
        :class:`tollgate.asgi.AuthMiddleware`."""

    def fingerprint(self) -> Dict[str, Any]:
        """What this service trusts, for ``GET /v1/fingerprint`` (CONTRACT
        §7): service name, issuer, audiences, algorithms, the keys held with
        their RFC 7638 thumbprints, the leeway, and the keyed fingerprint of
        a shared secret when one is held."""

    def health(self) -> Dict[str, Any]:
        """The authenticator's state: ``status`` (``ok``/``degraded``),
        ``mode``, ``feed``, ``breaker``, ``keys``, ``revocations``,
        ``cached_tokens``, …"""

    def is_healthy(self) -> bool:
        """Whether revocations are current and the token service reachable
        (the feed live or disabled by design, the breaker not open)."""

class Principal:
    """Who a validated token stands for: a user (``token_type ==
    "access"``) or a service (``"service"``), never confused. Immutable and
    hashable (by token id)."""

    @property
    def sub(self) -> str:
        """The subject: the user id, or the client id of a service."""
    @property
    def email(self) -> Optional[str]:
        """The user's e-mail (None for services)."""
    @property
    def roles(self) -> Tuple[str, ...]:
        """The user's roles, e.g. ``("admin",)``."""
    @property
    def plan(self) -> Optional[str]:
        """The user's plan (``free``, ``pro``, ``enterprise``, ``developer``, …; None for services)."""
    @property
    def permissions(self) -> Tuple[str, ...]:
        """The user's permissions, e.g. ``("tool:search", "tool:summarize")``."""
    @property
    def tools(self) -> Tuple[str, ...]:
        """The tools the permissions name (``tool:<name>``)."""
    @property
    def scopes(self) -> Tuple[str, ...]:
        """The token's scopes."""
    @property
    def sid(self) -> Optional[str]:
        """The session id (None for services)."""
    @property
    def exp(self) -> int:
        """Expiry, Unix seconds."""
    @property
    def iat(self) -> int:
        """Issue time, Unix seconds."""
    @property
    def jti(self) -> str:
        """The token's unique id."""
    @property
    def issuer(self) -> str:
        """The token's ``iss``."""
    @property
    def audiences(self) -> Tuple[str, ...]:
        """The token's ``aud``."""
    @property
    def token_type(self) -> str:
        """``"access"`` (a user's token) or ``"service"``."""
    @property
    def client_id(self) -> str:
        """The OAuth client the token was issued to."""
    def is_user(self) -> bool:
        """Whether a user's access token stands behind this principal."""
    def is_service(self) -> bool:
        """Whether a service's client-credentials token stands behind it."""
    def has_scope(self, scope: str) -> bool:
        """Whether the token has ``scope``."""
    def has_role(self, role: str) -> bool:
        """Whether the user has ``role``."""
    def has_permission(self, permission: str) -> bool:
        """Whether the user has ``permission`` (``tool:search``)."""
    def may_use_tool(self, tool: str) -> bool:
        """Whether the user has ``tool:<tool>``."""
    def require(self, requirements: "Requirements") -> None:
        """Raises ``AuthError`` naming the first unmet requirement."""

class Requirements:
    """What a route requires of its caller: the token type ``expect``
    (``"access"``, the default; ``"service"``; ``"any"``) and all of the
    scopes, roles, permissions and ``tool:<name>`` permissions named."""

    def __init__(
        self,
        expect: str = "access",
        *,
        scopes: Sequence[str] = (),
        roles: Sequence[str] = (),
        permissions: Sequence[str] = (),
        tools: Sequence[str] = (),
    ) -> None:
        """Requirements; ``tools=["search"]`` means the permission ``tool:search``."""
    @property
    def expect(self) -> str:
        """The token type required."""
    def check(self, principal: Principal) -> None:
        """Raises ``AuthError`` (``wrong_token_type``, ``insufficient_scope``,
        ``permission_denied``) naming the first unmet requirement."""

class ToolGate:
    """Tool permissions, per-plan rates and usage counts (CONTRACT §5): the
    Rust SDK's ``ToolGate``. One gate serves REST routes and WebSocket
    messages alike, so a user's rate and counts are one whichever way they
    call. In this process by default; shared by every instance through Redis
    with ``redis_url`` (or ``TOLLGATE_REDIS_URL`` for :meth:`from_env`)."""

    def __init__(
        self,
        plans: Optional[str] = None,
        *,
        redis_url: Optional[str] = None,
        redis_prefix: Optional[str] = None,
        usage_tokens: Optional["ServiceTokenSource"] = None,
        usage_issuer: Optional[str] = None,
        usage_spool: Optional[str] = None,
        usage_spool_max: int = 16 * 1024 * 1024,
        usage_flush_interval: float = 1.0,
        authenticator: Optional["Authenticator"] = None,
    ) -> None:
        """A gate over ``plans`` (the text of a ``plans.toml``; default the
        built-in plans). Raises ``AuthError`` ``invalid_plans``. With
        ``usage_tokens`` (a client with scope ``usage``) and ``usage_issuer``,
        every admitted call is also a durable usage event at the token
        service: the Rust SDK's ``UsageRecorder`` (batched every
        ``usage_flush_interval`` seconds, spooled to ``usage_spool`` up to
        ``usage_spool_max`` bytes while the token service is unreachable,
        replayed at start, counted once; see docs/usage.md). With
        ``authenticator``, plan changes on its revocation feed decide a user's
        tools and rate from the next call (REST or WebSocket) instead of the
        token's ``plan`` claim, which stays as minted."""
    @staticmethod
    def from_env(
        service_name: str = "service",
        *,
        environ: Optional[Environ] = None,
        record_usage: bool = False,
        authenticator: Optional["Authenticator"] = None,
    ) -> "ToolGate":
        """A gate over ``TOLLGATE_PLANS_FILE`` (default the built-in plans),
        shared through ``TOLLGATE_REDIS_URL`` under
        ``<namespace>:<service_name>`` when it is set. ``record_usage``:
        record usage events with ``TOLLGATE_CLIENT_ID``/``SECRET`` at
        ``TOLLGATE_ISSUER``, spooled to ``TOLLGATE_USAGE_SPOOL`` (bounded by
        ``TOLLGATE_USAGE_SPOOL_MAX``)."""
    @property
    def records_usage(self) -> bool:
        """Whether admitted calls are recorded as usage events."""
    def usage_pending_of(self, sub: str) -> Dict[str, int]:
        """``sub``'s calls per tool recorded here and not yet stored by the
        token service."""
    def flush_usage(self) -> bool:
        """Delivers queued and spooled usage events now; True when nothing is
        left undelivered."""
    def flush_usage_async(self) -> Awaitable[bool]:
        """The async twin of :meth:`flush_usage`."""
    def usage_stats(self) -> Dict[str, int]:
        """The recorder's counters: recorded, delivered, duplicates, dropped,
        spooled, skipped_lines (empty without a recorder)."""
    @property
    def shared(self) -> bool:
        """Whether buckets and counts live in Redis."""
    def plan_names(self) -> list[str]:
        """The plans known."""
    def offers(self, tool: str) -> bool:
        """Whether any plan offers ``tool``."""
    def admit(self, principal: Principal, tool: str) -> None:
        """Admits one call of ``tool``: a user with ``tool:<tool>`` within
        their plan's rate; the call is counted. Raises ``AuthError``
        ``permission_denied``, ``rate_limited`` (with ``retry_after_ms``)
        or ``wrong_token_type`` (a service token)."""
    def admit_async(self, principal: Principal, tool: str) -> Awaitable[None]:
        """The async twin of :meth:`admit`."""
    def usage_of(self, sub: str) -> Dict[str, int]:
        """``sub``'s calls per tool."""
    def usage_of_async(self, sub: str) -> Awaitable[Dict[str, int]]:
        """The async twin of :meth:`usage_of`."""
    def usage_all(self) -> Dict[str, Dict[str, int]]:
        """Every user's calls per tool."""
    def usage_all_async(self) -> Awaitable[Dict[str, Dict[str, int]]]:
        """The async twin of :meth:`usage_all`."""

class ServiceTokenSource:
    """This service's client-credentials tokens for calling other services,
    cached and renewed before they expire (at three quarters of their
    lifetime); concurrent callers share one renewal; a failed renewal keeps
    the cached token while it is valid."""

    def __init__(
        self,
        issuer: Optional[str] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        *,
        scope: Optional[str] = None,
        environ: Optional[Environ] = None,
    ) -> None:
        """A source for this client (settings as for :class:`Authenticator`;
        ``scope``: space-separated, default every scope of the client)."""
    @staticmethod
    def from_env(*, scope: Optional[str] = None, environ: Optional[Environ] = None) -> "ServiceTokenSource":
        """A source from ``TOLLGATE_ISSUER``, ``TOLLGATE_CLIENT_ID``/``TOLLGATE_CLIENT_SECRET``."""
    @property
    def client_id(self) -> str:
        """The client tokens are issued to."""
    def token(self) -> str:
        """A valid access token (send it; never log it). Raises ``AuthError``
        (``token_service_unavailable``, ``token_service_refused``)."""
    def token_async(self) -> Awaitable[str]:
        """The async twin of :meth:`token`."""
    def authorization(self) -> str:
        """``"Bearer <token>"``, for an ``Authorization`` header."""
    def invalidate(self) -> None:
        """Drops the cached token (the peer refused it): the next call fetches a new one."""

class TestIssuer:
    """Mints real tokens for a service's tests: the Rust SDK's test issuer
    (see :mod:`tollgate.testing`)."""

    def __init__(
        self,
        issuer: str = "https://tollgate.test",
        audiences: Sequence[str] = ("api",),
        *,
        hmac_secret: Optional[str] = None,
    ) -> None:
        """An issuer with a fresh EdDSA key, or, given ``hmac_secret`` (32
        bytes or more), one signing HS256 with that shared secret as an
        HS256 deployment does; its authenticators then accept HS256 only."""
    @property
    def issuer(self) -> str:
        """The issuer name."""
    @property
    def audiences(self) -> Tuple[str, ...]:
        """The audiences minted for."""
    def jwks(self) -> Dict[str, Any]:
        """The public keys (an RFC 7517 key set), to hand to another
        component under test."""
    def authenticator(self, audience: Optional[str] = None, *, service_name: str = "service") -> Authenticator:
        """An authenticator trusting only this issuer's key, expecting
        ``audience`` (default the first), seeing its revocations at once; no HTTP."""
    def user(
        self,
        sub: str,
        *,
        plan: Optional[str] = None,
        roles: Sequence[str] = (),
        permissions: Optional[Sequence[str]] = None,
        email: Optional[str] = None,
        session: Optional[str] = None,
        scope: Optional[str] = None,
        ttl: int = 900,
        issued_at: Optional[int] = None,
        expired: bool = False,
    ) -> str:
        """A user's access token (plan ``free`` by default, with the plan's
        permissions unless ``permissions`` is given; a fresh session)."""
    def service(self, client_id: str, *, scope: str = "", ttl: int = 3600, expired: bool = False) -> str:
        """A service token for ``client_id``."""
    def revoke(self, token: str) -> None:
        """Revokes one token this issuer minted."""
    def logout(self, token: str) -> None:
        """Ends the session of a token this issuer minted."""
    def revoke_session(self, sid: str) -> None:
        """Ends the session ``sid``."""
    def revoke_user(self, sub: str) -> None:
        """Revokes every token of ``sub`` issued before now."""
    def service_tokens(self, client_id: str, *, scope: str = "", ttl: int = 3600) -> ServiceTokenSource:
        """A service-token source minting with this issuer."""

class WsAuth:
    """WebSocket authentication for one service (CONTRACT §6): the Rust
    SDK's ``WsAuth`` (rules, per-user connection counts, shutdown). Serve a
    route with :class:`tollgate.asgi.WebSocketEndpoint`."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        gate: Optional[ToolGate] = None,
        requirements: Optional[Requirements] = None,
        allowed_origins: Optional[Sequence[str]] = None,
        development: bool = False,
        query_parameter: Optional[str] = None,
        expiry_notice: float = 60.0,
        send_timeout: float = 10.0,
    ) -> None:
        """Rules judging tokens with ``authenticator``: connection limits
        from ``gate``'s plans (shared through its Redis when it has one);
        ``requirements`` (default a user's token); browser origins allowed
        (``*`` for any, development only; no list in development means any;
        handshakes without ``Origin`` are not browsers and always allowed);
        a query parameter carrying the token (default none); ``auth.expiring``
        ``expiry_notice`` seconds before expiry (at most half the lifetime);
        ``send_timeout`` seconds for a message to reach a client's socket
        before it is closed with 1008 ``too_slow``."""
    @staticmethod
    def from_env(
        authenticator: Authenticator,
        *,
        gate: Optional[ToolGate] = None,
        allowed_origins: Optional[Sequence[str]] = None,
        environ: Optional[Environ] = None,
    ) -> "WsAuth":
        """Rules as above, with ``development`` from ``TOLLGATE_ENV`` (the
        configuration builder) and the other settings at their defaults."""
    @property
    def live_connections(self) -> int:
        """Connections open now."""
    def admit_async(self, scope: Mapping[str, Any]) -> Awaitable["Admission"]:
        """Judges the handshake of an ASGI ``websocket`` scope: origin, the
        one token (Bearer header, ``jwt.``/``jwt-auth.`` protocol entry, or
        the query parameter), the token, the requirements, and the plan's
        connection limit (a slot is taken). Raises ``AuthError`` whose
        ``status``/``headers``/``body`` are the refusal to send before any
        upgrade."""
    def connections_async(
        self, scope: Mapping[str, Any]
    ) -> Awaitable[Tuple[int, List[Tuple[bytes, bytes]], bytes]]:
        """Answers an ASGI ``http`` scope for ``GET``/``DELETE
        /v1/connections`` with the Rust SDK's ``ws::connections_router``
        (its method, query string and headers; the body is not read):
        ``(status, headers, body)``. Serve it with
        :class:`tollgate.asgi.ConnectionsEndpoint`."""
    def shutdown_async(self, grace: float = 5.0) -> Awaitable[None]:
        """Closes every connection with 1001 (``going_away``) and waits until
        all have ended, at most ``grace`` seconds; later handshakes are closed
        the same way at once."""

class Admission:
    """An accepted handshake: accept with :attr:`protocol`, then :meth:`start`."""

    @property
    def principal(self) -> Principal:
        """Who connects."""
    @property
    def protocol(self) -> Optional[str]:
        """The subprotocol to select in the answer: the first offered entry
        that carries no token, else the token-carrying one; None: none."""
    def start(self) -> Tuple["Connection", "Transport"]:
        """Starts the Rust supervisor: returns the handler's side and the
        glue's ends of the socket."""
    def release(self) -> None:
        """Gives the connection slot back without starting (the accept failed)."""

class Connection:
    """The handler's side of a live connection (wrapped by
    :class:`tollgate.asgi.Connection`)."""

    def recv(self) -> Awaitable[Optional[str]]:
        """The next client message (JSON text of an object with a string
        ``type``, not ``auth.refresh``), or None once closed."""
    def send(self, message: Any) -> Awaitable[bool]:
        """Queues ``message`` (JSON text, or an object ``json.dumps`` takes);
        False once closed."""
    @property
    def principal(self) -> Optional[Principal]:
        """Who is connected as of the latest accepted token (None once closed)."""
    def close(self) -> None:
        """Ends the conversation: the supervisor closes with 1000."""

class Transport:
    """The ASGI glue's ends of a supervised socket: what the client sent
    goes in, frames to send come out. The glue relays; it decides nothing."""

    def received_text(self, text: str) -> Awaitable[bool]:
        """A text message from the client (over 64 KiB: 1009); False once
        supervision has ended."""
    def received_bytes(self, data: bytes) -> Awaitable[bool]:
        """A binary message from the client (closes with 1008)."""
    def disconnected(self) -> None:
        """The client closed, or the socket is gone: supervision ends and
        the connection slot is released."""
    def next_frame(self) -> Awaitable[Optional[Tuple[str, str, int]]]:
        """The next frame to send: ``("text", json, 0)`` or ``("close",
        reason, code)``; None once supervision has ended."""

def invalid_message(message: Any, description: str) -> Dict[str, Any]:
    """The answer to a message that is valid JSON but not one this side
    understands (CONTRACT §6): ``{"type": "error", "code": "invalid_message",
    "error_description": description}`` with the message's ``id`` when it has
    one. The connection stays open, so a newer client is never cut off by an
    older server; handlers answer their own unknown types with it."""

def _core_validation_ns(
    issuer: TestIssuer, tokens: Sequence[str], expect: str = "access", audience: str = "api"
) -> float:
    """Benchmark support, not API: the mean nanoseconds of one Rust
    ``tollgate_core::Validator::validate`` of each token (no cache)."""

def _panic_at_the_boundary(awaitable_after_waiting: bool = False) -> Awaitable[None]:
    """Test support, not API: panics in Rust (at once, or on the runtime
    after the awaitable has started waiting); the panic must come out as
    ``AuthError("internal_error")``."""
