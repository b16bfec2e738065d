"""WebSocket interoperability (CONTRACT §6): Python's `websockets`, an
independent RFC 6455 client, against the real binaries — `tollgate serve`
(embedded SQLite in a temporary directory) and `chat-backend` following its
revocation feed.

scripts/python-tests builds both and exports TOLLGATE_BIN and
CHAT_BACKEND_BIN.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

_REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password for python"
ADMIN = ("admin@example.com", "a long admin password for python")
# Generous bounds that keep a broken build from hanging; no speed is
# asserted here.
PATIENCE = 15


def binary(variable, name):
    path = os.environ.get(variable) or str(_REPO / "target" / "debug" / name)
    if not Path(path).is_file():
        raise RuntimeError(f"{name} is not built at {path}: run scripts/python-tests")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None):
    """(status, JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=PATIENCE) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, json.loads(text) if text else None


def wait_until_healthy(url, process, log):
    deadline = time.monotonic() + PATIENCE * 2
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()}")
        try:
            if http("GET", url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became healthy: {log.read_text()}")


class Stack:
    """A token service and a way to start chat-backends trusting it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.processes = []
        port = free_port()
        self.issuer = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "TOLLGATE_ENV": "development",
            "TOLLGATE_BIND": f"127.0.0.1:{port}",
            "TOLLGATE_ISSUER": self.issuer,
            "TOLLGATE_BOOTSTRAP_ADMIN_EMAIL": ADMIN[0],
            "TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
            "RUST_LOG": "info",
        }
        added = subprocess.run(
            [binary("TOLLGATE_BIN", "tollgate"), "client", "add", "chat-backend",
             "--scope", "introspect", "--json"],
            cwd=workdir, env=self.env, capture_output=True, text=True, check=True,
        )
        self.client_secret = json.loads(added.stdout)["client_secret"]
        self.start(binary("TOLLGATE_BIN", "tollgate"), ["serve"], self.env,
                   f"{self.issuer}/healthz", "tollgate")

    def start(self, program, args, env, health, name):
        log = self.workdir / f"{name}-{len(self.processes)}.log"
        process = subprocess.Popen(
            [program, *args], cwd=self.workdir, env=env,
            stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )
        self.processes.append(process)
        wait_until_healthy(health, process, log)
        return process

    def backend(self, **extra_env):
        """Starts a chat-backend; (its process, its ws:// URL)."""
        port = free_port()
        env = {
            **self.env,
            **extra_env,
            "CHAT_BACKEND_BIND": f"127.0.0.1:{port}",
            "TOLLGATE_CLIENT_ID": "chat-backend",
            "TOLLGATE_CLIENT_SECRET": self.client_secret,
        }
        # /healthz is 200 once the revocation feed is live.
        process = self.start(binary("CHAT_BACKEND_BIN", "chat-backend"), [], env,
                             f"http://127.0.0.1:{port}/healthz", "chat-backend")
        return process, f"ws://127.0.0.1:{port}/ws"

    def user(self, email):
        """Registers and logs in: (user id, access token)."""
        status, body = http("POST", f"{self.issuer}/v1/auth/register",
                            {"email": email, "password": PASSWORD})
        assert status == 201, body
        return body["user_id"], self.login(email, PASSWORD)

    def login(self, email, password):
        status, body = http("POST", f"{self.issuer}/v1/auth/login",
                            {"email": email, "password": password})
        assert status == 200, body
        return body["access_token"]

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("tollgate"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def backend(stack):
    return stack.backend()[1]


async def ask(ws, message):
    await ws.send(json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), PATIENCE))


async def close_of(ws):
    """The close code and reason the server sent."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), PATIENCE)
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_jwt_subprotocol_connects_chats_and_logout_closes_with_4403(stack, backend):
    _, token = stack.user("wsalice@example.com")

    async def scenario():
        async with websockets.connect(backend, subprotocols=[f"jwt.{token}"]) as ws:
            # Only the token entry was offered, so it is echoed (the client
            # checks the echo is one it offered).
            assert ws.subprotocol == f"jwt.{token}"
            assert await ask(ws, {"type": "chat", "text": "hello"}) == {
                "type": "chat.reply", "text": "hello"}
            result = await ask(ws, {"type": "tool.call", "id": 1, "tool": "search"})
            assert (result["type"], result["id"]) == ("tool.result", 1), result
            refused = await ask(ws, {"type": "tool.call", "id": 2, "tool": "data_export"})
            assert (refused["type"], refused["id"], refused["code"]) == (
                "error", 2, "permission_denied")

            status, body = await asyncio.to_thread(
                http, "POST", f"{stack.issuer}/v1/auth/logout", None, token)
            assert status == 204, body
            assert await close_of(ws) == (4403, "token_revoked")

    asyncio.run(scenario())


def test_an_application_protocol_is_selected_before_the_token_entry(stack, backend):
    _, token = stack.user("wsbob@example.com")

    async def scenario():
        offered = ["chat.v1", f"jwt-auth.{token}"]
        async with websockets.connect(backend, subprotocols=offered) as ws:
            assert ws.subprotocol == "chat.v1"
            assert (await ask(ws, {"type": "chat", "text": "hi"}))["type"] == "chat.reply"

    asyncio.run(scenario())


def test_bad_tokens_and_foreign_origins_are_refused_before_any_upgrade(stack):
    _, token = stack.user("wscarol@example.com")
    _, backend = stack.backend(CHAT_BACKEND_ALLOWED_ORIGINS="https://chat.example.com")

    async def refusal(**options):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(backend, **options):
                pass
        response = refused.value.response
        return response.status_code, json.loads(response.body), response.headers

    async def scenario():
        status, body, headers = await refusal(subprotocols=["jwt.a.b.c"])
        assert (status, body["error"]) == (401, "malformed")
        assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        status, body, headers = await refusal()
        assert (status, body["error"]) == (401, "missing_token")
        assert headers["WWW-Authenticate"] == "Bearer"

        entry = [f"jwt.{token}"]
        status, body, _ = await refusal(subprotocols=entry, origin="https://evil.example.com")
        assert (status, body["error"]) == (403, "origin_not_allowed")
        for origin in ("https://chat.example.com", None):
            async with websockets.connect(backend, subprotocols=entry, origin=origin) as ws:
                assert (await ask(ws, {"type": "chat", "text": "ok"}))["type"] == "chat.reply"

    asyncio.run(scenario())


def test_sigterm_closes_every_connection_with_1001(stack):
    process, backend = stack.backend()
    _, token = stack.user("wsdave@example.com")

    async def scenario():
        async with websockets.connect(
            backend, additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            assert (await ask(ws, {"type": "chat", "text": "bye"}))["type"] == "chat.reply"
            process.send_signal(signal.SIGTERM)
            assert await close_of(ws) == (1001, "going_away")

    asyncio.run(scenario())
    assert process.wait(timeout=PATIENCE) == 0
