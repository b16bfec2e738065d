"""The real `tollgate serve` driven by Authlib, an independent OAuth client:
RFC 8414 discovery, client_credentials with client_secret_basic and
client_secret_post, access tokens verified with joserfc against the JWKS the
metadata names, introspection (RFC 7662), revocation (RFC 7009), refresh
rotation with reuse detection, and the OAuth error answers.

The binary comes from TOLLGATE_BIN (set by scripts/python-tests). One server
is started for the module, in a temporary directory (SQLite in
`./tollgate-data`), with a bootstrap admin and clients registered through
`tollgate client add`.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url
from joserfc import jwt
from joserfc.jwk import KeySet

_REPO = Path(__file__).resolve().parents[2]

# joserfc warns that RFC 9864 deprecates the JOSE name "EdDSA" in favour of
# "Ed25519". CONTRACT §3 fixes "EdDSA" (what every JWT library reads today);
# the warning is known and says nothing about this server.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "authlib interop admin password"


def tollgate_bin():
    path = os.environ.get("TOLLGATE_BIN") or str(_REPO / "target" / "debug" / "tollgate")
    if not Path(path).is_file():
        raise RuntimeError(f"tollgate is not built at {path}: run scripts/python-tests")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tollgate:
    """A `tollgate serve` process and the CLI against the same store."""

    def __init__(self, workdir):
        self.workdir = workdir
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        # Only our settings: nothing inherited may change the server.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TOLLGATE_", "JWT_")) and k not in ("DATABASE_URL", "REDIS_URL")
        }
        self.env.update(
            TOLLGATE_ENV="development",
            TOLLGATE_BIND=f"127.0.0.1:{port}",
            TOLLGATE_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
            TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
            RUST_LOG="warn",
        )
        self.log = open(workdir / "serve.log", "wb")
        self.process = subprocess.Popen(
            [tollgate_bin(), "serve"],
            cwd=workdir,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tollgate serve exited: {self.logs()}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"tollgate serve did not become ready: {self.logs()}")

    def logs(self):
        return (self.workdir / "serve.log").read_text(errors="replace")

    def add_client(self, client_id, *scopes):
        args = [tollgate_bin(), "client", "add", client_id, "--json"]
        for scope in scopes:
            args += ["--scope", scope]
        done = subprocess.run(
            args, cwd=self.workdir, env=self.env, capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        created = json.loads(done.stdout)
        assert created["client_id"] == client_id
        return created["client_secret"]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tollgate = Tollgate(tmp_path_factory.mktemp("tollgate-authlib"))
    yield tollgate
    tollgate.stop()


@pytest.fixture(scope="module")
def metadata(server):
    """The RFC 8414 document, fetched from the well-known URL Authlib builds
    from the issuer and checked by Authlib's metadata model."""
    url = get_well_known_url(server.base, external=True)
    assert url == f"{server.base}/.well-known/oauth-authorization-server"
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    meta = AuthorizationServerMetadata(answer.json())
    # RFC 8414 §3.2: a claim with zero elements MUST be omitted. Tollgate has
    # no authorization endpoint, so it has no response types and omits
    # `response_types_supported` (the OAuth WG's reading for servers without
    # an authorization endpoint); Authlib's model insists on the member, so
    # that one check is left out and the omission asserted instead.
    assert "response_types_supported" not in meta
    for key in meta.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(meta, f"validate_{key}")()
    return meta


@pytest.fixture(scope="module")
def introspector(server, metadata):
    """A client with scope `introspect`, authenticating with client_secret_basic."""
    secret = server.add_client("introspector", "introspect")
    return OAuth2Session(
        "introspector",
        secret,
        token_endpoint_auth_method="client_secret_basic",
    )


@pytest.fixture(scope="module")
def worker_secret(server):
    return server.add_client("billing-worker", "usage:write", "usage:read")


def session_for(client_id, secret, method):
    return OAuth2Session(
        client_id,
        secret,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
    )


def first_party(token=None):
    """The first-party public client `tollgate`: sessions from
    /v1/auth/login belong to it, so it uses no secret."""
    return OAuth2Session(
        "tollgate",
        token_endpoint_auth_method="none",
        revocation_endpoint_auth_method="none",
        token=token,
    )


def register_and_login(server, email, password="a long enough password"):
    created = requests.post(
        f"{server.base}/v1/auth/register", json={"email": email, "password": password}, timeout=30
    )
    assert created.status_code == 201, created.text
    login = requests.post(
        f"{server.base}/v1/auth/login", json={"email": email, "password": password}, timeout=30
    )
    assert login.status_code == 200, login.text
    assert login.headers["cache-control"] == "no-store"
    return created.json()["user_id"], login.json()


def verify(metadata, token):
    """Verifies an access token with joserfc against the JWKS at the
    metadata's `jwks_uri`, checking RFC 9068's header and time claims."""
    jwks = requests.get(metadata["jwks_uri"], timeout=10)
    assert jwks.status_code == 200
    keys = KeySet.import_key_set(jwks.json())
    algorithms = metadata["token_signing_alg_values_supported"]
    decoded = jwt.decode(token, keys, algorithms=algorithms)
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["alg"] in algorithms
    assert decoded.header["kid"] in [k["kid"] for k in jwks.json()["keys"]]
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": "api"},
        exp={"essential": True},
        iat={"essential": True},
        nbf={"essential": True},
        sub={"essential": True},
        jti={"essential": True},
        client_id={"essential": True},
    )
    registry.validate(decoded.claims)
    return decoded.claims


def test_discovery_names_every_endpoint(server, metadata):
    assert metadata["issuer"] == server.base
    assert metadata["token_endpoint"] == f"{server.base}/oauth/token"
    assert metadata["introspection_endpoint"] == f"{server.base}/oauth/introspect"
    assert metadata["revocation_endpoint"] == f"{server.base}/oauth/revoke"
    assert metadata["jwks_uri"] == f"{server.base}/.well-known/jwks.json"
    assert set(metadata.grant_types_supported) == {"client_credentials", "refresh_token"}
    assert "password" not in metadata.grant_types_supported
    for method in ("client_secret_basic", "client_secret_post"):
        assert method in metadata.token_endpoint_auth_methods_supported
        assert method in metadata.introspection_endpoint_auth_methods_supported
        assert method in metadata.revocation_endpoint_auth_methods_supported
    assert metadata["token_signing_alg_values_supported"] == ["EdDSA"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_through_authlib(server, metadata, worker_secret, method):
    client = session_for("billing-worker", worker_secret, method)
    sent = []
    client.hooks["response"].append(lambda r, *a, **k: sent.append(r))
    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    # The method really was the one asked for.
    request = sent[-1].request
    if method == "client_secret_basic":
        assert request.headers["authorization"].startswith("Basic ")
        assert "client_secret" not in request.body
    else:
        assert "authorization" not in request.headers
        assert "client_secret=" in request.body
    assert sent[-1].headers["cache-control"] == "no-store"
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert "refresh_token" not in token
    assert set(token["scope"].split()) == {"usage:write", "usage:read"}
    assert not token.is_expired()
    claims = verify(metadata, token["access_token"])
    assert claims["sub"] == "billing-worker"
    assert claims["client_id"] == "billing-worker"
    assert claims["token_type"] == "service"
    assert "sid" not in claims and "email" not in claims

    # A narrower scope is granted; a wider one is invalid_scope.
    narrow = client.fetch_token(
        metadata["token_endpoint"], grant_type="client_credentials", scope="usage:read"
    )
    assert narrow["scope"] == "usage:read"
    assert verify(metadata, narrow["access_token"])["scope"] == "usage:read"
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(
            metadata["token_endpoint"], grant_type="client_credentials", scope="admin"
        )
    assert refused.value.error == "invalid_scope"


def test_introspection_of_service_and_user_tokens(server, metadata, introspector, worker_secret):
    worker = session_for("billing-worker", worker_secret, "client_secret_post")
    service = worker.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    answer = introspector.introspect_token(
        metadata["introspection_endpoint"], token=service["access_token"]
    )
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    claims = verify(metadata, service["access_token"])
    assert body["active"] is True
    assert body["token_type"] == "service"
    for name in ("iss", "sub", "exp", "iat", "client_id", "scope", "jti"):
        assert body[name] == claims[name], name

    user_id, login = register_and_login(server, "introspected@example.com")
    answer = introspector.introspect_token(
        metadata["introspection_endpoint"],
        token=login["access_token"],
        token_type_hint="access_token",
    )
    body = answer.json()
    assert body["active"] is True
    assert body["sub"] == user_id
    assert body["token_type"] == "access"
    assert body["client_id"] == "tollgate"
    assert body["sid"] == verify(metadata, login["access_token"])["sid"]

    # The same with client_secret_post from a second introspecting client.
    secret = server.add_client("introspector-post", "introspect")
    poster = session_for("introspector-post", secret, "client_secret_post")
    assert poster.introspect_token(
        metadata["introspection_endpoint"], token=login["access_token"]
    ).json()["active"] is True

    # Garbage is inactive, exactly `{"active": false}`.
    garbage = introspector.introspect_token(metadata["introspection_endpoint"], token="not-a-token")
    assert garbage.status_code == 200 and garbage.json() == {"active": False}


def test_introspection_needs_client_authentication(server, metadata, worker_secret):
    token = session_for("billing-worker", worker_secret, "client_secret_basic").fetch_token(
        metadata["token_endpoint"], grant_type="client_credentials"
    )["access_token"]
    anonymous = requests.post(metadata["introspection_endpoint"], data={"token": token}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    # An authenticated client without scope `introspect` is refused too.
    worker = session_for("billing-worker", worker_secret, "client_secret_basic")
    refused = worker.introspect_token(metadata["introspection_endpoint"], token=token)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_revoked_tokens_introspect_inactive(server, metadata, introspector, worker_secret, method):
    worker = session_for("billing-worker", worker_secret, method)
    token = worker.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    endpoint = metadata["introspection_endpoint"]
    assert introspector.introspect_token(endpoint, token=token["access_token"]).json()["active"]

    revoked = worker.revoke_token(
        metadata["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200
    assert revoked.headers["cache-control"] == "no-store"
    after = introspector.introspect_token(endpoint, token=token["access_token"])
    assert after.status_code == 200 and after.json() == {"active": False}
    # Revoking again, or revoking something unknown, is still 200 (RFC 7009 §2.2).
    assert worker.revoke_token(metadata["revocation_endpoint"], token=token["access_token"]).status_code == 200
    assert worker.revoke_token(metadata["revocation_endpoint"], token="tgr_unknown").status_code == 200


def test_another_client_cannot_revoke_a_token(server, metadata, introspector, worker_secret):
    token = session_for("billing-worker", worker_secret, "client_secret_basic").fetch_token(
        metadata["token_endpoint"], grant_type="client_credentials"
    )
    # The introspector has no `revoke` scope: 200, and the token stays good.
    answer = introspector.revoke_token(metadata["revocation_endpoint"], token=token["access_token"])
    assert answer.status_code == 200
    still = introspector.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert still.json()["active"] is True


def test_refresh_rotation_and_reuse_detection(server, metadata, introspector):
    _, login = register_and_login(server, "rotating@example.com")
    endpoint = metadata["token_endpoint"]
    user = first_party(token=login)
    first_refresh = login["refresh_token"]

    rotated = user.refresh_token(endpoint)
    assert rotated["refresh_token"] != first_refresh
    assert rotated["access_token"] != login["access_token"]
    assert rotated["token_type"] == "Bearer"
    assert rotated["scope"] == "profile offline_access"
    claims = verify(metadata, rotated["access_token"])
    assert claims["token_type"] == "access"
    # The same session carries on.
    assert claims["sid"] == verify(metadata, login["access_token"])["sid"]
    second_refresh = rotated["refresh_token"]

    # Authlib keeps rotating with what the server returned.
    again = user.refresh_token(endpoint)
    current_access, current_refresh = again["access_token"], again["refresh_token"]
    assert current_refresh not in (first_refresh, second_refresh)

    # Presenting a spent refresh token: invalid_grant, and the session dies.
    thief = first_party(token={"access_token": "x", "token_type": "Bearer", "refresh_token": first_refresh})
    with pytest.raises(OAuthError) as reused:
        thief.refresh_token(endpoint)
    assert reused.value.error == "invalid_grant"

    with pytest.raises(OAuthError) as dead:
        user.refresh_token(endpoint)
    assert dead.value.error == "invalid_grant"
    assert introspector.introspect_token(
        metadata["introspection_endpoint"], token=current_access
    ).json() == {"active": False}
    assert introspector.introspect_token(
        metadata["introspection_endpoint"], token=current_refresh
    ).json() == {"active": False}
    me = requests.get(
        f"{server.base}/v1/auth/me", headers={"authorization": f"Bearer {current_access}"}, timeout=10
    )
    assert me.status_code == 401
    assert me.json()["error"] == "invalid_token"


def test_a_user_revokes_their_refresh_token_without_a_secret(server, metadata, introspector):
    _, login = register_and_login(server, "leaving@example.com")
    user = first_party(token=login)
    answer = user.revoke_token(
        metadata["revocation_endpoint"], token=login["refresh_token"], token_type_hint="refresh_token"
    )
    assert answer.status_code == 200
    # The whole session ended: its access token too.
    assert introspector.introspect_token(
        metadata["introspection_endpoint"], token=login["access_token"]
    ).json() == {"active": False}
    with pytest.raises(OAuthError) as refused:
        user.refresh_token(metadata["token_endpoint"])
    assert refused.value.error == "invalid_grant"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_invalid_client_is_401_with_a_challenge(server, metadata, worker_secret, method):
    for client_id, secret in (
        ("billing-worker", worker_secret + "x"),
        ("billing-worker", "tgs_" + "A" * 43),
        ("no-such-client", worker_secret),
    ):
        client = session_for(client_id, secret, method)
        seen = []
        client.hooks["response"].append(lambda r, *a, **k: seen.append(r))
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
        assert seen[-1].status_code == 401
        assert seen[-1].headers["www-authenticate"].startswith("Basic ")
        assert seen[-1].headers["cache-control"] == "no-store"


def test_the_password_grant_is_refused(server, metadata, worker_secret):
    client = session_for("billing-worker", worker_secret, "client_secret_basic")
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(
            metadata["token_endpoint"],
            grant_type="password",
            username=ADMIN_EMAIL,
            password=ADMIN_PASSWORD,
        )
    assert refused.value.error == "unsupported_grant_type"
    # Also for the public client, and without any client at all.
    with pytest.raises(OAuthError) as public:
        first_party().fetch_token(
            metadata["token_endpoint"], grant_type="password", username=ADMIN_EMAIL, password=ADMIN_PASSWORD
        )
    assert public.value.error == "unsupported_grant_type"


def test_no_token_or_secret_in_the_server_log(server, metadata, worker_secret):
    token = session_for("billing-worker", worker_secret, "client_secret_basic").fetch_token(
        metadata["token_endpoint"], grant_type="client_credentials"
    )
    logs = server.logs()
    assert worker_secret not in logs
    assert token["access_token"] not in logs
    assert ADMIN_PASSWORD not in logs
