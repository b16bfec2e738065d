"""`tollgate.asgi.AuthMiddleware` (issue 11, the fast way in for REST
routes): the principal in `scope["state"]["principal"]`, read with
`tollgate.asgi.principal(request)`; every refusal the same answer, byte for
byte, as the FastAPI dependency's; the cached path answered from memory by
`Authenticator.authenticate_request_now`. Driven in process through ASGI
(every message the app sends is compared), no server needed.
"""

import asyncio

import pytest
from fastapi import Depends, FastAPI, Request

import tollgate
import tollgate.asgi
import tollgate.fastapi
from tollgate.testing import TestIssuer


@pytest.fixture(scope="module")
def issuer():
    return TestIssuer()


def apps(issuer, requirements=None, expect="access", scope=None):
    """(with the middleware, with the dependency) over one authenticator."""
    auth = issuer.authenticator()
    behind = FastAPI()
    tollgate.fastapi.install(behind, auth)
    behind.add_middleware(
        tollgate.asgi.AuthMiddleware, authenticator=auth, requirements=requirements, exempt=["/open"]
    )

    @behind.get("/me")
    async def me(request: Request):
        caller = tollgate.asgi.principal(request)
        assert request.state.principal is caller
        return {"sub": caller.sub, "plan": caller.plan}

    @behind.get("/open")
    async def open_route(request: Request):
        with pytest.raises(RuntimeError):
            tollgate.asgi.principal(request)
        return {"open": True}

    dependent = FastAPI()
    tollgate.fastapi.install(dependent, auth)

    @dependent.get("/me")
    async def me_dep(user: tollgate.Principal = Depends(tollgate.fastapi.require(expect=expect, scope=scope))):
        return {"sub": user.sub, "plan": user.plan}

    return behind, dependent


def call(app, path="/me", headers=()):
    """Every message `app` sends for one GET."""
    sent = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"test"), *headers], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def bearer(token):
    return [(b"authorization", f"Bearer {token}".encode())]


def test_the_principal_is_in_the_scope_state_and_exempt_paths_pass(issuer):
    behind, dependent = apps(issuer)
    token = issuer.user("ann", plan="pro")
    for _ in range(2):  # a first judgement, then the cached one
        sent = call(behind, headers=bearer(token))
        assert sent[0]["status"] == 200, sent
        assert sent[1]["body"] == b'{"sub":"ann","plan":"pro"}'
        assert sent == call(dependent, headers=bearer(token))
    assert call(behind, "/open")[0]["status"] == 200


def test_refusals_are_byte_identical_to_the_dependencys(issuer):
    revoked = issuer.user("rev")
    cached_then_revoked = issuer.user("later")
    cases = [
        [],
        [(b"authorization", b"Basic abc")],
        [(b"authorization", b"Bearer a b")],
        bearer("not.a.token"),
        bearer(issuer.user("old", expired=True)),
        bearer(TestIssuer().user("stranger")),
        bearer(issuer.service("svc")),
        bearer(revoked),
        bearer(cached_then_revoked),
        bearer(cached_then_revoked) * 2,
        [(b"Authorization", f"Bearer {revoked}".encode())],
    ]
    behind, dependent = apps(issuer)
    # Judged once (cached), then revoked: the cached path refuses too.
    assert call(behind, headers=bearer(cached_then_revoked))[0]["status"] == 200
    issuer.revoke(revoked)
    issuer.revoke(cached_then_revoked)
    seen = set()
    for headers in cases:
        got, want = call(behind, headers=headers), call(dependent, headers=headers)
        assert got == want, headers
        status = got[0]["status"]
        assert status in (400, 401, 403), got
        names = [name for name, _ in got[0]["headers"]]
        assert b"www-authenticate" in names and b"content-type" in names, got
        seen.add(status)
    assert seen == {400, 401}  # 400: a malformed Authorization header (the SDK's rule)


def test_requirements_refuse_with_403_like_the_dependency(issuer):
    needs = tollgate.Requirements("any", scopes=["write"])
    behind, dependent = apps(issuer, requirements=needs, expect="any", scope="write")
    token = issuer.user("w")
    for _ in range(2):
        got = call(behind, headers=bearer(token))
        assert got[0]["status"] == 403, got
        assert got == call(dependent, headers=bearer(token))
    good = issuer.user("w2", scope="write")
    assert call(behind, headers=bearer(good))[0]["status"] == 200


def test_the_fast_path_answers_only_from_memory(issuer):
    auth = issuer.authenticator()
    token = issuer.user("fast")
    headers = bearer(token)
    assert auth.authenticate_request_now(headers) is None  # never judged: await the async path
    assert auth.authenticate_request(headers).sub == "fast"
    assert auth.authenticate_request_now(headers).sub == "fast"
    for bad, code in (([], "missing_token"), (headers * 2, "invalid_request"), ([(b"authorization", b"x")], "invalid_request")):
        with pytest.raises(tollgate.AuthError) as refused:
            auth.authenticate_request_now(bad)
        assert refused.value.code == code, bad
    # Header names and values as str read the same.
    assert auth.authenticate_request_now([("authorization", f"Bearer {token}")]).sub == "fast"
    with pytest.raises(tollgate.AuthError) as refused:
        auth.authenticate_request_now(headers, tollgate.Requirements("service"))
    assert refused.value.code == "wrong_token_type"
