"""A FastAPI app for scripts/bench-python: one route with the Tollgate
dependency, the same route behind ``tollgate.asgi.AuthMiddleware``, the same
route with no authentication, and one with a dependency that does nothing
(FastAPI's own cost of a dependency), trusting a TestIssuer whose token the
script reads from ``$BENCH_TOKEN_FILE``. The middleware wraps the whole app
(as a service would install it) and exempts every route but ``/mw``, so the
unauthenticated routes pay its exemption check too."""

import os

from fastapi import Depends, FastAPI, Request

import tollgate
import tollgate.asgi
import tollgate.fastapi
from tollgate.testing import TestIssuer

issuer = TestIssuer()
app = FastAPI()
auth = issuer.authenticator("api")
tollgate.fastapi.install(app, auth)
app.add_middleware(tollgate.asgi.AuthMiddleware, authenticator=auth, exempt=["/open", "/noop", "/me"])
with open(os.environ["BENCH_TOKEN_FILE"], "w") as out:
    out.write(issuer.user("bench-user", email="bench@example.com", ttl=3600))


@app.get("/open")
async def open_route():
    return {"sub": None}


@app.get("/me")
async def me(user: tollgate.Principal = Depends(tollgate.fastapi.user())):
    return {"sub": user.sub}


async def nothing(request: Request) -> None:
    """A dependency that does nothing: FastAPI's own cost of one."""
    return None


@app.get("/noop")
async def noop(_: None = Depends(nothing)):
    return {"sub": None}


@app.get("/mw")
async def behind_middleware(request: Request):
    return {"sub": tollgate.asgi.principal(request).sub}
