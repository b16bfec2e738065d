"""The real binaries for the behaviour suites: `tollgate serve` (embedded
SQLite in a temporary directory) and the two example services that trust
it — the Rust `chat-backend` and the Python `fastapi-backend` (under uvicorn,
protected only through the `tollgate` package). Both are started the same
way, with the same settings, so one suite can drive either.

scripts/python-tests builds the binaries, installs the `tollgate` package
into the virtualenv, and exports TOLLGATE_BIN and CHAT_BACKEND_BIN.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

REPO = Path(__file__).resolve().parents[2]
FASTAPI_BACKEND = REPO / "examples" / "fastapi-backend"
PASSWORD = "a long enough password for python"
ADMIN = ("admin@example.com", "a long admin password for python")
# Generous bounds that keep a broken build from hanging; no speed is
# asserted here.
PATIENCE = 15
BACKENDS = ["chat-backend", "fastapi-backend"]


def binary(variable, name):
    path = os.environ.get(variable) or str(REPO / "target" / "debug" / name)
    if not Path(path).is_file():
        raise RuntimeError(f"{name} is not built at {path}: run scripts/python-tests")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, headers=None, raw=None):
    """(status, JSON body or None, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=PATIENCE) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None, response.headers
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, json.loads(text) if text else None, err.headers


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
        time.sleep(0.05)
    raise RuntimeError(f"{url} never became healthy: {log.read_text()}")


class Backend:
    """A running example service."""

    def __init__(self, kind, process, port):
        self.kind = kind
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/ws"


class Stack:
    """A token service and a way to start backends trusting it."""

    def __init__(self, workdir, **service_env):
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
            **service_env,
        }
        added = subprocess.run(
            [binary("TOLLGATE_BIN", "tollgate"), "client", "add", "chat-backend",
             "--scope", "introspect", "--json"],
            cwd=workdir, env=self.env, capture_output=True, text=True, check=True,
        )
        self.client_secret = json.loads(added.stdout)["client_secret"]
        self.service = self.start([binary("TOLLGATE_BIN", "tollgate"), "serve"], self.env,
                                  f"{self.issuer}/healthz", "tollgate")
        self.users = 0
        self._admin = None

    def start(self, command, env, health, name, cwd=None):
        log = self.workdir / f"{name}-{len(self.processes)}.log"
        process = subprocess.Popen(
            command, cwd=cwd or self.workdir, env=env,
            stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )
        self.processes.append(process)
        wait_until_healthy(health, process, log)
        return process

    def backend(self, kind="chat-backend", **extra_env):
        """Starts `kind` trusting this token service, with the service
        identity `chat-backend` (a client with scope `introspect`)."""
        port = free_port()
        env = {
            **self.env,
            "CHAT_BACKEND_BIND": f"127.0.0.1:{port}",
            "TOLLGATE_CLIENT_ID": "chat-backend",
            "TOLLGATE_CLIENT_SECRET": self.client_secret,
            **extra_env,
        }
        if kind == "chat-backend":
            command, cwd = [binary("CHAT_BACKEND_BIN", "chat-backend")], None
        else:
            command, cwd = [sys.executable, "-m", "fastapi_backend"], FASTAPI_BACKEND
        # /healthz is 200 once the revocation feed is live.
        process = self.start(command, env, f"http://127.0.0.1:{port}/healthz", kind, cwd=cwd)
        return Backend(kind, process, port)

    def register(self, email=None):
        """Registers a new user: (user id, e-mail)."""
        self.users += 1
        email = email or f"user{self.users}-{time.monotonic_ns()}@example.com"
        status, body, _ = http("POST", f"{self.issuer}/v1/auth/register",
                               {"email": email, "password": PASSWORD})
        assert status == 201, body
        return body["user_id"], email

    def user(self, email=None):
        """Registers and logs in: (user id, access token)."""
        user_id, email = self.register(email)
        return user_id, self.login(email)["access_token"]

    def login(self, email, password=PASSWORD):
        """The token response of a login."""
        status, body, _ = http("POST", f"{self.issuer}/v1/auth/login",
                               {"email": email, "password": password})
        assert status == 200, body
        return body

    def refresh(self, refresh_token):
        status, body, _ = http("POST", f"{self.issuer}/v1/auth/refresh",
                               {"refresh_token": refresh_token})
        assert status == 200, body
        return body

    def admin(self):
        if self._admin is None:
            self._admin = self.login(*ADMIN)["access_token"]
        return self._admin

    def set_plan(self, user_id, plan, roles=None):
        body = {"plan": plan}
        if roles is not None:
            body["roles"] = roles
        status, answer, _ = http("PATCH", f"{self.issuer}/v1/admin/users/{user_id}", body, self.admin())
        assert status == 200, answer

    def user_with_plan(self, plan, roles=None):
        """A user on `plan` (with `roles`), logged in after the change."""
        user_id, email = self.register()
        self.set_plan(user_id, plan, roles)
        return user_id, self.login(email)["access_token"]

    def service_token(self):
        """A client-credentials token of the `chat-backend` client."""
        data = f"grant_type=client_credentials&client_id=chat-backend&client_secret={self.client_secret}"
        request = urllib.request.Request(
            f"{self.issuer}/oauth/token", data=data.encode(), method="POST",
            headers={"content-type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=PATIENCE) as response:
            return json.loads(response.read())["access_token"]

    def operator_token(self):
        """A client-credentials token of an operator client `ops` with the
        scope `connections:admin` (created on first use)."""
        if getattr(self, "_ops_secret", None) is None:
            status, body, _ = http("POST", f"{self.issuer}/v1/admin/clients",
                                   {"client_id": "ops", "scopes": ["connections:admin"]}, self.admin())
            assert status == 201, body
            self._ops_secret = body["client_secret"]
        data = f"grant_type=client_credentials&client_id=ops&client_secret={self._ops_secret}"
        request = urllib.request.Request(
            f"{self.issuer}/oauth/token", data=data.encode(), method="POST",
            headers={"content-type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=PATIENCE) as response:
            return json.loads(response.read())["access_token"]

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                process.kill()


def started(tmp_path_factory, **service_env):
    """A stack for a module-scoped fixture."""
    return Stack(tmp_path_factory.mktemp("tollgate"), **service_env)


async def ask(ws, message):
    await ws.send(json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), PATIENCE))


async def close_of(ws):
    """The close code and reason the server sent."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), PATIENCE)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def refusal(url, **options):
    """(status, JSON body, headers) of a refused handshake."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, **options):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body), response.headers
