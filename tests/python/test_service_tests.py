"""A service's own tests, as a Python service would write them: the
`tollgate_issuer` fixture (the `tollgate` package's pytest plugin) mints
real tokens, and the app under test trusts only that issuer — so a test
cannot sign with a secret the service does not know. Here the service is
fastapi-backend, driven in-process through httpx's ASGI transport.
"""

import asyncio
import time
import sys

import httpx

import tollgate
from tollgate.testing import TestIssuer

from stack import FASTAPI_BACKEND

sys.path.insert(0, str(FASTAPI_BACKEND))
import fastapi_backend  # noqa: E402


def app_for(issuer):
    return fastapi_backend.create_app(
        issuer.authenticator(service_name="fastapi-backend"),
        tollgate.ToolGate(),
        peer_url="http://peer.invalid",
        service_tokens=issuer.service_tokens("fastapi-backend"),
    )


def test_a_service_tests_its_routes_with_the_test_issuer(tollgate_issuer):
    app = app_for(tollgate_issuer)
    admin = tollgate_issuer.user("ada", plan="enterprise", roles=["admin"])
    user = tollgate_issuer.user("bob", issued_at=int(time.time()) - 10)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            def bearer(token):
                return {"authorization": f"Bearer {token}"}

            answer = await client.post("/api/tools/data_export", headers=bearer(admin), json={"input": "x y"})
            assert answer.status_code == 200 and answer.json()["calls"] == 1
            answer = await client.post("/api/tools/data_export", headers=bearer(user))
            assert (answer.status_code, answer.json()["error"]) == (403, "permission_denied")
            answer = await client.get("/api/admin/usage", headers=bearer(admin))
            assert answer.json() == {"usage": {"ada": {"data_export": 1}}}

            # The issuer's service tokens pass the service-only route.
            service = tollgate_issuer.service_tokens("fastapi-backend").token()
            answer = await client.get("/internal/agents", headers=bearer(service))
            assert answer.json()["caller"] == "fastapi-backend"

            # Revocations made by the issuer bite at once.
            tollgate_issuer.revoke_user("bob")
            answer = await client.get("/api/usage", headers=bearer(user))
            assert (answer.status_code, answer.json()["error"]) == (401, "revoked")

            # A token from any other key is refused, however well formed.
            forged = TestIssuer(issuer=tollgate_issuer.issuer).user("ada", roles=["admin"])
            answer = await client.get("/api/admin/usage", headers=bearer(forged))
            assert (answer.status_code, answer.json()["error"]) == (401, "unknown_key")
            assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')

            fingerprint = (await client.get("/v1/fingerprint")).json()
            assert (fingerprint["service"], fingerprint["issuer"]) == ("fastapi-backend", tollgate_issuer.issuer)

    asyncio.run(scenario())


def test_sync_routes_get_the_same_dependency(tollgate_authenticator, tollgate_issuer):
    from fastapi import Depends, FastAPI

    import tollgate.fastapi

    app = FastAPI()
    tollgate.fastapi.install(app, tollgate_authenticator)

    @app.get("/sync")
    def sync_route(user: tollgate.Principal = Depends(tollgate.fastapi.require(tool="search"))):
        return {"sub": user.sub}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ok = await client.get("/sync", headers={"authorization": f"Bearer {tollgate_issuer.user('s')}"})
            assert ok.json() == {"sub": "s"}
            missing = await client.get("/sync")
            assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
            assert missing.json()["error"] == "missing_token"
            no_tool = tollgate_issuer.user("t", permissions=[])
            denied = await client.get("/sync", headers={"authorization": f"Bearer {no_tool}"})
            assert (denied.status_code, denied.json()["error"]) == (403, "permission_denied")

    asyncio.run(scenario())
