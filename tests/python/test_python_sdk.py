"""The `tollgate` Python package itself: bad input never crosses into the
interpreter as anything but `AuthError` with a code; the SECURITY.md attack
tokens get the same codes from Python as from the Rust core; settings go
through the one configuration builder; async calls never block the event
loop; service tokens, tool gates and the test issuer work from Python.
"""

import asyncio
import http.server
import json
import threading

import pytest

import tollgate
from tollgate.testing import TestIssuer

import core_peer
import test_core_attacks
from stack import started


@pytest.fixture(scope="module")
def issuer():
    return TestIssuer()


def code_of(call, *args, **kwargs):
    with pytest.raises(tollgate.AuthError) as refused:
        call(*args, **kwargs)
    return refused.value.code


@pytest.mark.parametrize(
    "token, code",
    [
        (None, "missing_token"),
        (12, "malformed"),
        (3.5, "malformed"),
        (["a.b.c"], "malformed"),
        (object(), "malformed"),
        (b"\xff\xfe.\x80.\x00", "malformed"),
        ("\ud800.a.b", "malformed"),
        ("x" * (1 << 20), "token_too_large"),
        (b"x" * (1 << 20), "token_too_large"),
        ("é" * 5000, "token_too_large"),
        # Not a compact JWS, so not a Tollgate token: refused without asking
        # anyone (the SDK's rule, issue 15 item 6).
        ("", "malformed"),
        ("an-opaque-token-of-forty-characters-long", "malformed"),
        ("a.b.c", "malformed"),
        ("a\x00.b.c", "malformed"),
    ],
)
def test_bad_input_is_an_auth_error_with_a_code(issuer, token, code):
    auth = issuer.authenticator()
    assert code_of(auth.authenticate, token) == code
    with pytest.raises(tollgate.AuthError) as refused:
        asyncio.run(_await(auth.authenticate_async(token)))
    assert refused.value.code == code
    assert refused.value.status in (401, 503)


async def _await(awaitable):
    return await awaitable


def test_a_rust_panic_is_an_auth_error_not_an_abort():
    from tollgate import _native

    with pytest.raises(tollgate.AuthError) as stopped:
        _native._panic_at_the_boundary()
    assert (stopped.value.code, stopped.value.status) == ("internal_error", 500)

    async def on_the_runtime():
        await _native._panic_at_the_boundary(awaitable_after_waiting=True)

    with pytest.raises(tollgate.AuthError) as stopped:
        asyncio.run(on_the_runtime())
    assert stopped.value.code == "internal_error"


def test_a_principal_is_frozen_and_complete(issuer):
    auth = issuer.authenticator()
    token = issuer.user("u1", plan="pro", roles=["admin"], email="u1@example.com", session="s1")
    principal = auth.authenticate(token)
    assert (principal.sub, principal.email, principal.roles, principal.plan, principal.sid) == (
        "u1", "u1@example.com", ("admin",), "pro", "s1")
    assert principal.token_type == "access" and principal.is_user() and not principal.is_service()
    assert "tool:code_interpreter" in principal.permissions and "web_browse" in principal.tools
    assert principal.scopes == ("openid", "profile") and principal.client_id == "tollgate"
    assert principal.exp > principal.iat and principal.issuer == issuer.issuer
    with pytest.raises(AttributeError):
        principal.plan = "enterprise"
    assert auth.authenticate(token) == principal and hash(auth.authenticate(token)) == hash(principal)
    assert "u1" in repr(principal) and token not in repr(principal)

    service = auth.authenticate(issuer.service("billing", scope="usage:write"), expect="service")
    assert service.is_service() and service.plan is None and service.has_scope("usage:write")
    assert code_of(auth.authenticate, issuer.service("billing")) == "wrong_token_type"
    assert code_of(auth.authenticate, token, expect="service") == "wrong_token_type"
    with pytest.raises(ValueError):
        auth.authenticate(token, expect="user")


def test_revocations_expiry_and_requirements_have_the_contract_codes(issuer):
    auth = issuer.authenticator()
    assert code_of(auth.authenticate, issuer.user("e", expired=True)) == "expired"
    token = issuer.user("r")
    auth.authenticate(token)
    issuer.logout(token)
    assert code_of(auth.authenticate, token) == "revoked"
    assert code_of(issuer.authenticator("billing").authenticate, issuer.user("a")) == "wrong_audience"
    assert code_of(auth.authenticate, TestIssuer().user("stranger")) == "unknown_key"

    principal = auth.authenticate(issuer.user("q"))
    admin = tollgate.Requirements(roles=["admin"])
    with pytest.raises(tollgate.AuthError) as refused:
        principal.require(admin)
    err = refused.value
    assert (err.code, err.status) == ("permission_denied", 403)
    assert err.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert err.body == {"error": "permission_denied", "error_description": err.description}
    scope = tollgate.Requirements("any", scopes=["write"])
    assert code_of(scope.check, principal) == "insufficient_scope"
    tollgate.Requirements(tools=["search"]).check(principal)


def test_request_headers_are_read_by_the_sdk_rule(issuer):
    auth = issuer.authenticator()
    token = issuer.user("h")
    assert auth.authenticate_request([(b"authorization", f"Bearer {token}".encode())]).sub == "h"
    assert code_of(auth.authenticate_request, []) == "missing_token"
    assert code_of(auth.authenticate_request, [(b"authorization", b"Bearer a b")]) == "invalid_request"
    two = [(b"authorization", f"Bearer {token}".encode())] * 2
    assert code_of(auth.authenticate_request, two) == "invalid_request"
    service = tollgate.Requirements("service")
    assert code_of(auth.authenticate_request, two[:1], service) == "wrong_token_type"


def test_a_tool_gate_limits_per_plan_and_counts(issuer):
    gate = tollgate.ToolGate()
    auth = issuer.authenticator()
    free = auth.authenticate(issuer.user("f"))
    assert gate.offers("data_export") and not gate.offers("teleport")
    assert code_of(gate.admit, free, "data_export") == "permission_denied"
    for _ in range(60):
        gate.admit(free, "search")
    with pytest.raises(tollgate.AuthError) as limited:
        gate.admit(free, "search")
    assert limited.value.code == "rate_limited" and 0 < limited.value.retry_after_ms <= 1000
    assert limited.value.status == 429 and int(limited.value.headers["retry-after"]) >= 1
    assert gate.usage_of("f") == {"search": 60}
    assert gate.usage_all() == {"f": {"search": 60}}
    custom = tollgate.ToolGate('[plans.free]\nrate_multiplier = 1\ntools = ["search"]\nws_connections = 1\n')
    assert "free" in custom.plan_names()
    with pytest.raises(tollgate.AuthError) as bad:
        tollgate.ToolGate("[plans.free]\nrate_multiplier = 'x'\n")
    assert bad.value.code == "invalid_plans"


def test_settings_go_through_the_configuration_builder():
    # Two names of one setting that disagree: the builder's error, naming both.
    environ = {"TOLLGATE_ISSUER": "http://127.0.0.1:1", "JWT_ISSUER": "http://127.0.0.1:2"}
    with pytest.raises(tollgate.AuthError) as refused:
        tollgate.Authenticator.from_env(environ=environ)
    assert refused.value.code == "invalid_config"
    assert "TOLLGATE_ISSUER" in str(refused.value) and "JWT_ISSUER" in str(refused.value)
    production = {"TOLLGATE_ENV": "production", "TOLLGATE_ISSUER": "http://example.com"}
    assert code_of(tollgate.Authenticator.from_env, environ=production) == "invalid_config"
    # Service tokens need the service's identity.
    anonymous = {"TOLLGATE_ISSUER": "http://127.0.0.1:9", "TOLLGATE_ENV": "development"}
    assert code_of(tollgate.ServiceTokenSource.from_env, environ=anonymous) == "invalid_config"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = started(tmp_path_factory)
    try:
        yield stack
    finally:
        stack.stop()


def test_against_the_real_token_service(stack):
    environ = {"TOLLGATE_ENV": "development", "SERVICE_ID": "chat-backend", "SERVICE_SECRET": stack.client_secret}
    auth = tollgate.Authenticator(issuer=stack.issuer, audience=["api"], environ=environ, service_name="py")
    assert auth.fingerprint()["service"] == "py" and auth.health()["feed"] == "live"
    user_id, token = stack.user()
    assert auth.authenticate(token).sub == user_id
    # Aliases (SERVICE_ID/SERVICE_SECRET) and keyword arguments alike.
    tokens = tollgate.ServiceTokenSource(stack.issuer, "chat-backend", stack.client_secret)
    service = tokens.token()
    assert tokens.token() == service and tokens.authorization() == f"Bearer {service}"
    assert auth.authenticate(service, expect="service").sub == "chat-backend"
    assert tollgate.ServiceTokenSource.from_env(environ={**environ, "TOLLGATE_ISSUER": stack.issuer}).token()

    async def scenario():
        assert (await auth.authenticate_async(token)).sub == user_id
        assert await tokens.token_async() == service

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def hs256_stack(tmp_path_factory):
    stack = started(
        tmp_path_factory,
        TOLLGATE_SIGNING_ALG="HS256",
        TOLLGATE_HMAC_SECRET="an HS256 secret of at least 32 bytes, for the async test",
    )
    try:
        yield stack
    finally:
        stack.stop()


def test_a_judgement_that_asks_the_token_service_never_blocks_the_event_loop(hs256_stack):
    # Without the HS256 secret every new token is introspected: the
    # awaitable is pending, and the event loop runs other work meanwhile.
    environ = {"TOLLGATE_ENV": "development", "SERVICE_ID": "chat-backend", "SERVICE_SECRET": hs256_stack.client_secret}
    auth = tollgate.Authenticator(issuer=hs256_stack.issuer, audience=["api"], environ=environ)
    assert auth.health()["mode"] == "introspection"
    user_id, token = hs256_stack.user()

    async def scenario():
        ran = asyncio.Event()
        asyncio.get_running_loop().call_soon(ran.set)
        pending = auth.authenticate_async(token)
        assert (await pending).sub == user_id
        assert ran.is_set(), "the event loop was blocked"
        # A value that cannot be a token is refused at once, unasked.
        with pytest.raises(tollgate.AuthError) as refused:
            await auth.authenticate_async("an-opaque-token-of-forty-characters-long")
        assert refused.value.code == "malformed"
        assert auth.health()["introspections"] == 1

    asyncio.run(scenario())


class _Jwks(http.server.BaseHTTPRequestHandler):
    """A token service that only publishes keys (for the attack suite)."""

    documents = {}

    def do_GET(self):
        body = self.documents.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {}).encode())

    def log_message(self, *args):
        pass


def test_the_security_attack_tokens_get_the_cores_codes_from_python(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # The same cases as test_core_attacks, issued by this issuer.
        monkeypatch.setattr(core_peer, "ISSUER", issuer)
        monkeypatch.setattr(test_core_attacks, "ISSUER", issuer)
        world = test_core_attacks.World()
        cases = [case for make in test_core_attacks.CASE_SETS for case in make(world)]
        _Jwks.documents = {
            "/.well-known/oauth-authorization-server": {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/jwks",
                **{f"{name}_endpoint": f"{issuer}/{name}" for name in (
                    "token", "introspection", "revocation", "tollgate_revocations", "tollgate_fingerprint")},
                **{f"{name}_supported": [] for name in (
                    "grant_types", "token_endpoint_auth_methods", "scopes",
                    "introspection_endpoint_auth_methods", "revocation_endpoint_auth_methods",
                    "token_signing_alg_values")},
            },
            "/jwks": world.jwks,
        }
        auth = tollgate.Authenticator(issuer, "api", environ={"TOLLGATE_ENV": "development"})
        failures = []
        for name, token, expected in cases:
            # Not a compact JWS included: Tollgate issues no opaque access
            # tokens, so the SDK gives the core's code without asking.
            try:
                auth.authenticate(token)
                got = "ok"
            except tollgate.AuthError as err:
                got = err.code
            if got != expected:
                failures.append(f"{name}: expected {expected}, got {got}")
        assert not failures, "\n".join(failures)
        assert len(cases) > 80
        service, user = world.service["token"], world.ours["EdDSA"]["token"]
        assert code_of(auth.authenticate, service) == "wrong_token_type"
        assert code_of(auth.authenticate, user, expect="service") == "wrong_token_type"
        assert auth.authenticate(service, expect="service").is_service()
    finally:
        server.shutdown()
