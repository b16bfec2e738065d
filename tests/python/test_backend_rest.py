"""The REST routes of both example services (chat-backend in Rust,
fastapi-backend in Python), one suite: every route and every error code,
the same status, challenge and body from both; and with the token service
down, cached tokens keep working while unknown ones fail closed.
"""

import json
import subprocess
import time

import pytest

from stack import BACKENDS, PATIENCE, binary, http, started


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


def get(backend, path, token=None, **options):
    return http("GET", f"{backend.url}{path}", None, token, **options)


def refused(answer, status, code, challenge=None):
    got_status, body, headers = answer
    assert (got_status, body["error"]) == (status, code), body
    assert isinstance(body["error_description"], str) and body["error_description"]
    if challenge is not None:
        assert headers["WWW-Authenticate"].startswith(challenge), headers["WWW-Authenticate"]
    return body, headers


def test_the_routes_answer_their_callers(stack, backend):
    user_id, token = stack.user()
    status, body, _ = get(backend, "/api/agents/status", token)
    assert status == 200, body
    assert (body["user"], body["plan"], body["tools"]) == (user_id, "free", ["search", "summarize"])
    # The agents come from /internal/agents, called with a service token.
    assert [a["name"] for a in body["agents"]] == ["researcher", "writer"], body

    status, body, _ = http("POST", f"{backend.url}/api/tools/search", {"input": "three little words"}, token)
    assert (status, body["tool"], body["calls"]) == (200, "search", 1), body
    assert body["result"] == {"results": ["3 documents match 3 words"]}
    status, body, _ = http("POST", f"{backend.url}/api/tools/summarize", None, token)
    assert (status, body["result"]) == (200, {"summary": "a text of 0 words, in one line"})
    assert get(backend, "/api/usage", token)[1] == {"user": user_id, "usage": {"search": 1, "summarize": 1}}

    status, body, _ = get(backend, "/api/admin/usage", stack.admin())
    assert status == 200 and body["usage"][user_id] == {"search": 1, "summarize": 1}

    service = stack.service_token()
    status, body, _ = get(backend, "/internal/agents", service)
    assert (status, body["caller"]) == (200, "chat-backend")

    status, fingerprint, _ = get(backend, "/v1/fingerprint")
    assert status == 200
    assert (fingerprint["issuer"], fingerprint["audiences"]) == (stack.issuer, ["api"])
    assert fingerprint["service"] == backend.kind
    assert fingerprint["keys"] and fingerprint["leeway"] == 30
    status, health, _ = get(backend, "/healthz")
    assert (status, health["status"], health["feed"]) == (200, "ok", "live")


def test_every_refusal_has_its_code_status_and_challenge(stack, backend):
    _, token = stack.user()
    _, revoked = stack.user()
    assert http("POST", f"{stack.issuer}/v1/auth/logout", None, revoked)[0] == 204
    service = stack.service_token()

    _, headers = refused(get(backend, "/api/usage"), 401, "missing_token")
    assert headers["WWW-Authenticate"] == "Bearer"
    refused(get(backend, "/api/usage", headers={"authorization": "Bearer two words"}), 400,
            "invalid_request", 'Bearer error="invalid_request"')
    refused(get(backend, "/api/usage", "a.b.c"), 401, "malformed", 'Bearer error="invalid_token"')
    refused(get(backend, "/api/usage", "x" * 9000), 401, "token_too_large", 'Bearer error="invalid_token"')
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    refused(get(backend, "/api/usage", flipped), 401, "bad_signature")
    refused(get(backend, "/api/usage", service), 401, "wrong_token_type", 'Bearer error="invalid_token"')
    refused(get(backend, "/internal/agents", token), 401, "wrong_token_type")
    # The logout reaches the backend through its feed.
    for _ in range(100):
        if get(backend, "/api/usage", revoked)[0] == 401:
            break
        time.sleep(0.05)
    refused(get(backend, "/api/usage", revoked), 401, "revoked", 'Bearer error="invalid_token"')

    refused(get(backend, "/api/admin/usage", token), 403, "permission_denied", 'Bearer error="insufficient_scope"')
    refused(http("POST", f"{backend.url}/api/tools/data_export", None, token), 403, "permission_denied")
    refused(http("POST", f"{backend.url}/api/tools/teleport", None, token), 404, "unknown_tool")
    for body in (b'{"input": 3}', b'{"input": "x", "more": 1}', b"not json"):
        refused(http("POST", f"{backend.url}/api/tools/search", token=token, raw=body), 400, "invalid_request")
    refused(get(backend, "/no/such/route"), 404, "not_found")


def test_with_the_token_service_down_cached_tokens_work_and_unknown_ones_fail_closed(tmp_path_factory):
    stack = started(tmp_path_factory)
    try:
        backends = [stack.backend(kind) for kind in BACKENDS]
        _, seen = stack.user()
        _, unseen = stack.user()
        for backend in backends:
            assert get(backend, "/api/usage", seen)[0] == 200
        stack.service.terminate()
        stack.service.wait(timeout=PATIENCE)
        for backend in backends:
            # The feed notices the outage…
            for _ in range(200):
                if get(backend, "/healthz")[0] == 503:
                    break
                time.sleep(0.05)
            assert get(backend, "/healthz")[1]["feed"] != "live", backend.kind
            # …a token judged before is still good (nothing can say
            # otherwise), one never seen cannot be checked: refused.
            status, body, _ = get(backend, "/api/usage", seen)
            assert status == 200, (backend.kind, body)
            _, headers = refused(get(backend, "/api/usage", unseen), 503, "token_service_unavailable")
            assert headers["Retry-After"] == "1"
    finally:
        stack.stop()


def test_consistency_check_lists_both_services_as_consistent(stack):
    backends = [stack.backend(kind) for kind in BACKENDS]
    checked = subprocess.run(
        [binary("TOLLGATE_BIN", "tollgate"), "consistency", "check", stack.issuer,
         *(b.url for b in backends), "--json"],
        capture_output=True, text=True, timeout=PATIENCE, check=False,
    )
    lines = [json.loads(line) for line in checked.stdout.splitlines()]
    assert checked.returncode == 0, checked.stdout + checked.stderr
    by_service = {line["service"]: line for line in lines if "service" in line}
    assert {"tollgate", *BACKENDS} <= set(by_service), lines
    for kind in BACKENDS:
        assert (by_service[kind]["level"], by_service[kind]["differences"]) == ("INFO", []), by_service[kind]
    assert lines[-1]["overall"] == "INFO"
