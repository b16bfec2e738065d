"""The operators' `GET`/`DELETE /v1/connections` (issue 13, docs/api.md),
one suite for both example services: chat-backend serves the SDK's
`ws::connections_router` directly, fastapi-backend through the `tollgate`
package (`tollgate.asgi.ConnectionsEndpoint` over the same Rust router), so
the same requests get the same answers from both.
"""

import asyncio

import pytest
import websockets

from stack import BACKENDS, PATIENCE, ask, close_of, http, started


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


def connections(backend, method, query="", token=None):
    return http(method, f"{backend.url}/v1/connections{query}", None, token)


def run(scenario):
    asyncio.run(asyncio.wait_for(scenario(), PATIENCE * 4))


async def chat_works(ws):
    assert await ask(ws, {"type": "chat", "text": "still here"}) == {"type": "chat.reply", "text": "still here"}


def test_the_connections_api_needs_a_service_token_with_its_scope(stack, backend):
    _, user = stack.user()
    service = stack.service_token()  # scope `introspect` only
    for method in ("GET", "DELETE"):
        status, body, headers = connections(backend, method, "?user=nobody")
        assert (status, body["error"]) == (401, "missing_token"), body
        assert headers["WWW-Authenticate"].startswith("Bearer"), headers
        status, body, _ = connections(backend, method, "?user=nobody", user)
        assert (status, body["error"]) == (401, "wrong_token_type"), (method, body)
        status, body, headers = connections(backend, method, "?user=nobody", service)
        assert (status, body["error"]) == (403, "insufficient_scope"), (method, body)
        assert "insufficient_scope" in headers["WWW-Authenticate"]
    status, body, _ = connections(backend, "GET", "", stack.operator_token())
    assert status == 200 and isinstance(body["connections"], list), body


def test_operators_list_and_close_exactly_the_named_connections(stack, backend):
    ops = stack.operator_token()
    ann, ann_token = stack.user()
    bob, bob_token = stack.user()

    async def scenario():
        protocol = lambda token: {"subprotocols": [f"jwt.{token}"]}  # noqa: E731
        ann1 = await websockets.connect(backend.ws, **protocol(ann_token))
        ann2 = await websockets.connect(backend.ws, **protocol(ann_token))
        bob1 = await websockets.connect(backend.ws, **protocol(bob_token))
        try:
            status, body, _ = connections(backend, "GET", f"?user={ann}", ops)
            assert status == 200, body
            listed = body["connections"]
            assert [c["user"] for c in listed] == [ann, ann], listed
            for entry in listed:
                assert set(entry) == {"user", "sid", "plan", "opened_at", "expires_at"}
                assert entry["plan"] == "free" and entry["sid"]
                assert entry["expires_at"] >= entry["opened_at"] > 1_700_000_000
            _, body, _ = connections(backend, "GET", f"?user={bob}", ops)
            bob_sid = body["connections"][0]["sid"]

            status, body, _ = connections(backend, "DELETE", f"?user={ann}", ops)
            assert (status, body) == (200, {"closed": 2}), body
            for ws in (ann1, ann2):
                assert (await close_of(ws))[0] == 4403
            await chat_works(bob1)

            status, body, _ = connections(backend, "DELETE", f"?sid={bob_sid}", ops)
            assert (status, body) == (200, {"closed": 1}), body
            assert (await close_of(bob1))[0] == 4403
        finally:
            for ws in (ann1, ann2, bob1):
                await ws.close()

    run(scenario)


# (query, what the description names): each refused with 400 on GET and
# DELETE, closing nothing (issue: `DELETE ?force=1` and `GET ?usr=…` used
# to be read as "every connection").
STRICT = [
    ("?force=1", "`force`"),
    ("?force", "`force`"),
    ("?user=ann&force=1", "`force`"),
    ("?usr=ann", "`usr`"),
    ("?user=ann&user=bob", "`user`"),
    ("?user=", "`user` or `sid`"),
    ("?user=ann&sid=s", "`user` or `sid`"),
    ("?user=%zz", "malformed"),
]


def test_connections_queries_are_strict_and_a_bad_one_closes_nothing(stack, backend):
    ops = stack.operator_token()
    user, token = stack.user()

    async def scenario():
        async with websockets.connect(backend.ws, subprotocols=[f"jwt.{token}"]) as ws:
            for query, named in STRICT:
                for method in ("GET", "DELETE"):
                    status, body, _ = connections(backend, method, query.replace("ann", user), ops)
                    assert (status, body["error"]) == (400, "invalid_request"), (method, query, body)
                    assert named in body["error_description"], (method, query, body)
            status, body, _ = connections(backend, "DELETE", "", ops)
            assert (status, body["error"]) == (400, "invalid_request"), body
            await chat_works(ws)
            _, body, _ = connections(backend, "GET", f"?user={user}", ops)
            assert len(body["connections"]) == 1, body

    run(scenario)
