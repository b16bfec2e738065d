"""WebSocket behaviour (CONTRACT §6), one suite for both example services:
the Rust `chat-backend` and its Python twin `fastapi-backend` (the
`tollgate` package under uvicorn), so they cannot drift. The client is
Python's `websockets`, an independent RFC 6455 implementation; the token
service is the real `tollgate serve` (see stack.py).
"""

import asyncio
import json
import signal
import time

import pytest
import websockets

from stack import BACKENDS, PATIENCE, ask, close_of, http, refusal, started


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = started(tmp_path_factory)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, stack):
    return stack.backend(request.param)


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """A token service issuing 4-second access tokens, and both backends
    trusting it without leeway."""
    stack = started(tmp_path_factory, TOLLGATE_ACCESS_TOKEN_TTL="4")
    try:
        stack.backends = {kind: stack.backend(kind, TOLLGATE_LEEWAY="0") for kind in BACKENDS}
        yield stack
    finally:
        stack.stop()


def run(scenario):
    asyncio.run(asyncio.wait_for(scenario(), PATIENCE * 4))


def bearer(token):
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


def test_every_carrier_connects_and_the_protocol_rule_is_the_same(stack, backend):
    _, token = stack.user()

    async def scenario():
        # Only the token entry offered: it is echoed (the client checks the
        # echo is one it offered).
        for prefix in ("jwt.", "jwt-auth."):
            async with websockets.connect(backend.ws, subprotocols=[f"{prefix}{token}"]) as ws:
                assert ws.subprotocol == f"{prefix}{token}"
                assert await ask(ws, {"type": "chat", "text": "hello"}) == {
                    "type": "chat.reply", "text": "hello"}
        # An application protocol is selected before the token entry.
        offered = ["chat.v1", f"jwt-auth.{token}", "chat.v2"]
        async with websockets.connect(backend.ws, subprotocols=offered) as ws:
            assert ws.subprotocol == "chat.v1"
            assert (await ask(ws, {"type": "chat", "text": "hi"}))["type"] == "chat.reply"
        async with websockets.connect(backend.ws, **bearer(token)) as ws:
            assert ws.subprotocol is None
            assert (await ask(ws, {"type": "chat", "text": "hi"}))["type"] == "chat.reply"

    run(scenario)


def test_logout_and_admin_revoke_close_live_connections_with_4403(stack, backend):
    user_id, email = stack.register()

    async def closed_by(revoke):
        token = stack.login(email)["access_token"]
        async with websockets.connect(backend.ws, subprotocols=[f"jwt.{token}"]) as ws:
            assert (await ask(ws, {"type": "chat", "text": "x"}))["type"] == "chat.reply"
            status = await asyncio.to_thread(revoke, token)
            assert status == 204
            revoked_at = time.monotonic()
            code = await close_of(ws)
            return code, time.monotonic() - revoked_at

    def logout(token):
        return http("POST", f"{stack.issuer}/v1/auth/logout", None, token)[0]

    def admin_revoke(_token):
        return http("POST", f"{stack.issuer}/v1/admin/users/{user_id}/revoke", None, stack.admin())[0]

    async def scenario():
        for revoke in (logout, admin_revoke):
            code, latency = await closed_by(revoke)
            assert code == (4403, "token_revoked"), revoke.__name__
            # The promised second is measured by the benchmarks; this only
            # records it.
            print(f"{backend.kind} {revoke.__name__}: 4403 after {latency * 1000:.0f} ms")

    run(scenario)


def test_bad_tokens_and_foreign_origins_are_refused_before_any_upgrade(stack):
    _, token = stack.user()
    _, revoked = stack.user()
    assert http("POST", f"{stack.issuer}/v1/auth/logout", None, revoked)[0] == 204
    service = stack.service_token()

    async def scenario(backend):
        # The revocation reaches the backend through its feed.
        for _ in range(100):
            try:
                async with websockets.connect(backend.ws, subprotocols=[f"jwt.{revoked}"]):
                    pass
            except websockets.InvalidStatus:
                break
            await asyncio.sleep(0.05)
        status, body, headers = await refusal(backend.ws, subprotocols=["jwt.a.b.c"])
        assert (status, body["error"]) == (401, "malformed")
        assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        status, body, headers = await refusal(backend.ws)
        assert (status, body["error"]) == (401, "missing_token")
        assert headers["WWW-Authenticate"] == "Bearer"
        for options, expected in [
            ({"subprotocols": [f"jwt.{revoked}"]}, (401, "revoked")),
            ({"subprotocols": [f"jwt.{service}"]}, (401, "wrong_token_type")),
            ({"subprotocols": ["jwt."]}, (400, "invalid_request")),
            ({"subprotocols": [f"jwt.{token}", f"jwt-auth.{token}"]}, (400, "invalid_request")),
            ({"subprotocols": [f"jwt.{token}"], **bearer(token)}, (400, "invalid_request")),
        ]:
            status, body, _ = await refusal(backend.ws, **options)
            assert (status, body["error"]) == expected, (backend.kind, options.keys(), expected)
            assert set(body) >= {"error", "error_description"}

        entry = [f"jwt.{token}"]
        status, body, headers = await refusal(backend.ws, subprotocols=entry, origin="https://evil.example.com")
        assert (status, body["error"]) == (403, "origin_not_allowed")
        assert "WWW-Authenticate" not in headers
        for origin in ("https://chat.example.com", "https://Chat.example.com/", None):
            async with websockets.connect(backend.ws, subprotocols=entry, origin=origin) as ws:
                assert (await ask(ws, {"type": "chat", "text": "ok"}))["type"] == "chat.reply"

    for kind in BACKENDS:
        backend = stack.backend(kind, CHAT_BACKEND_ALLOWED_ORIGINS="https://chat.example.com")
        run(lambda: scenario(backend))


async def until_limited(ws, tool, most):
    """Calls `tool` until `rate_limited`: (calls admitted, the refusal,
    seconds taken)."""
    started_at = time.monotonic()
    for n in range(most):
        answer = await ask(ws, {"type": "tool.call", "id": n, "tool": tool})
        if answer["type"] == "error":
            return n, answer, time.monotonic() - started_at
        assert (answer["type"], answer["id"]) == ("tool.result", n), answer
    pytest.fail(f"{most} calls of {tool} and never rate_limited")


def test_tools_follow_the_plan_and_its_rate_shared_with_rest(stack, backend):
    _, free = stack.user()
    _, pro = stack.user_with_plan("pro")

    async def scenario():
        async with websockets.connect(backend.ws, **bearer(free)) as ws:
            result = await ask(ws, {"type": "tool.call", "id": "a", "tool": "search", "input": "a b"})
            assert (result["type"], result["id"], result["tool"]) == ("tool.result", "a", "search"), result
            refused = await ask(ws, {"type": "tool.call", "id": 2, "tool": "code_interpreter"})
            assert (refused["type"], refused["id"], refused["code"]) == ("error", 2, "permission_denied")
            unknown = await ask(ws, {"type": "tool.call", "id": 3, "tool": "teleport"})
            assert unknown["code"] == "unknown_tool"
            # free: 60 calls a minute (a bucket refilling one a second),
            # one already made.
            admitted, limited, seconds = await until_limited(ws, "summarize", 200)
            assert 59 <= admitted <= 59 + seconds + 1, (admitted, seconds)
            assert limited["code"] == "rate_limited" and 0 < limited["retry_after_ms"] <= 1000
            # The connection is kept; REST shares the bucket and the counts.
            assert (await ask(ws, {"type": "chat", "text": "still here"}))["type"] == "chat.reply"
        for _ in range(3):
            status, body, headers = http("POST", f"{backend.url}/api/tools/summarize", None, free)
            if status != 200:
                break
            admitted += 1
        assert (status, body["error"]) == (429, "rate_limited")
        assert int(headers["Retry-After"]) >= 1 and body["retry_after_ms"] > 0
        status, body, _ = http("GET", f"{backend.url}/api/usage", None, free)
        assert status == 200 and body["usage"] == {"search": 1, "summarize": admitted}, body

        # pro: its tools, and twice the rate.
        async with websockets.connect(backend.ws, **bearer(pro)) as ws:
            admitted, limited, seconds = await until_limited(ws, "code_interpreter", 400)
            assert 120 <= admitted <= 120 + 2 * seconds + 2, (admitted, seconds)
            assert limited["code"] == "rate_limited"

    run(scenario)


def test_connections_per_user_follow_the_plan(stack, backend):
    _, token = stack.user()

    async def scenario():
        first = await websockets.connect(backend.ws, **bearer(token))
        second = await websockets.connect(backend.ws, subprotocols=[f"jwt.{token}"])
        status, body, headers = await refusal(backend.ws, **bearer(token))
        assert (status, body["error"]) == (403, "connection_limit")
        assert "WWW-Authenticate" not in headers
        await first.close()
        # The slot comes back once the server has seen the close.
        for _ in range(100):
            try:
                async with websockets.connect(backend.ws, **bearer(token)) as third:
                    assert (await ask(third, {"type": "chat", "text": "x"}))["type"] == "chat.reply"
                break
            except websockets.InvalidStatus:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("the closed connection's slot never came back")
        await second.close()

    run(scenario)


def test_malformed_messages(stack, backend):
    _, token = stack.user()

    async def connect():
        return await websockets.connect(backend.ws, **bearer(token), max_size=None)

    async def scenario():
        ws = await connect()
        # Valid JSON of a shape this side does not know: invalid_message,
        # and the connection stays (a newer client is never cut off).
        for message in [
            {"type": "no.such.type", "id": 5},
            {"type": "chat", "id": 6},
            {"type": "tool.call", "id": 7},
            {"type": "tool.call", "id": 8, "tool": "search", "input": 3},
            {"type": "auth.refresh", "id": 9},
            {"id": 10},
            {"type": 11, "id": 11},
        ]:
            answer = await ask(ws, message)
            assert (answer["type"], answer["code"], answer["id"]) == ("error", "invalid_message", message["id"]), answer
        for other in ([1, 2], "text", None):
            answer = await ask(ws, other)
            assert (answer["type"], answer["code"]) == ("error", "invalid_message"), answer
        assert (await ask(ws, {"type": "chat", "text": "alive"}))["type"] == "chat.reply"
        await ws.send("this is not JSON")
        assert await close_of(ws) == (1008, "invalid_message")

        ws = await connect()
        await ws.send(b"\x00binary")
        assert await close_of(ws) == (1008, "invalid_message")

        ws = await connect()
        await ws.send(json.dumps({"type": "chat", "text": "x" * (70 * 1024)}))
        code, _ = await close_of(ws)
        assert code == 1009

    run(scenario)


def test_expiry_without_a_refresh_closes_with_4401(short):
    _, email = short.register()

    async def scenario(backend):
        token = short.login(email)["access_token"]
        async with websockets.connect(backend.ws, **bearer(token)) as ws:
            notice = json.loads(await asyncio.wait_for(ws.recv(), PATIENCE))
            assert notice["type"] == "auth.expiring" and notice["expires_at"] > time.time() - 1
            assert await close_of(ws) == (4401, "token_expired")
        # An expired token is refused at the handshake.
        await asyncio.sleep(max(0.0, notice["expires_at"] - time.time()) + 1.1)
        status, body, _ = await refusal(backend.ws, **bearer(token))
        assert (status, body["error"]) == (401, "expired")

    for backend in short.backends.values():
        run(lambda: scenario(backend))


def test_in_band_refresh_keeps_a_connection_over_several_lifetimes(short):
    _, email = short.register()
    other_email = short.register()[1]

    async def scenario(backend):
        other = short.login(other_email)["access_token"]
        session = short.login(email)
        opened = time.time()
        async with websockets.connect(backend.ws, **bearer(session["access_token"])) as ws:
            for refresh in range(3):
                message = json.loads(await asyncio.wait_for(ws.recv(), PATIENCE))
                assert message["type"] == "auth.expiring", message
                if refresh == 0:
                    # Someone else's token is refused; the old expiry stays.
                    refused = await ask(ws, {"type": "auth.refresh", "access_token": other})
                    assert (refused["type"], refused["code"], refused["request"]) == (
                        "error", "subject_mismatch", "auth.refresh")
                session = await asyncio.to_thread(short.refresh, session["refresh_token"])
                answer = await ask(ws, {"type": "auth.refresh", "access_token": session["access_token"]})
                assert answer["type"] == "auth.refreshed", answer
                assert answer["expires_at"] > message["expires_at"]
            # The fourth notice comes after two lifetimes (8 s) of the first
            # token: the connection outlived them.
            message = json.loads(await asyncio.wait_for(ws.recv(), PATIENCE))
            assert message["type"] == "auth.expiring"
            assert time.time() - opened > 6
            assert (await ask(ws, {"type": "chat", "text": "alive"}))["text"] == "alive"

    for backend in short.backends.values():
        run(lambda: scenario(backend))


def test_sigterm_closes_every_connection_with_1001(stack):
    for kind in BACKENDS:
        backend = stack.backend(kind)
        _, token = stack.user()

        async def scenario():
            async with websockets.connect(backend.ws, **bearer(token)) as ws:
                assert (await ask(ws, {"type": "chat", "text": "bye"}))["type"] == "chat.reply"
                backend.process.send_signal(signal.SIGTERM)
                assert await close_of(ws) == (1001, "going_away")

        run(scenario)
        assert backend.process.wait(timeout=PATIENCE) == 0, kind
