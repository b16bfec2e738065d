"""``python -m fastapi_backend``: configuration and start-up only; the
service is ``fastapi_backend.create_app``.

Settings come from the Tollgate configuration builder, like every piece of
the platform: ``TOLLGATE_ISSUER``, ``TOLLGATE_AUDIENCE``,
``TOLLGATE_CLIENT_ID``/``TOLLGATE_CLIENT_SECRET`` (aliases
``SERVICE_ID``/``SERVICE_SECRET``), ``TOLLGATE_FEED_DOWN_POLICY``,
``TOLLGATE_PLANS_FILE``, ``TOLLGATE_ENV``, and ``TOLLGATE_REDIS_URL`` (with
``TOLLGATE_REDIS_PREFIX``): when set, tool rates, usage counts and each
user's WebSocket connection count are shared by every instance through
Redis, under ``<namespace>:fastapi-backend``. Its own, the same as
chat-backend's: ``--bind`` / ``CHAT_BACKEND_BIND`` (default
``127.0.0.1:8090``), ``--peer-url`` / ``CHAT_BACKEND_PEER_URL``,
``--allowed-origins`` / ``CHAT_BACKEND_ALLOWED_ORIGINS``. Exit status 2 when
the configuration is invalid or the token service cannot be used; SIGTERM
closes every WebSocket with 1001, then exits 0.
"""

import argparse
import logging
import os
import sys

import tollgate
import tollgate.asgi

from . import create_app

SERVICE = "fastapi-backend"


def main() -> int:
    parser = argparse.ArgumentParser(prog="fastapi-backend", description="A chat backend protected by Tollgate.")
    parser.add_argument("--bind", default=os.environ.get("CHAT_BACKEND_BIND", "127.0.0.1:8090"),
                        help="address to listen on (CHAT_BACKEND_BIND)")
    parser.add_argument("--peer-url", default=os.environ.get("CHAT_BACKEND_PEER_URL"),
                        help="base URL of the peer holding the agents; default this service (CHAT_BACKEND_PEER_URL)")
    parser.add_argument("--allowed-origins", default=os.environ.get("CHAT_BACKEND_ALLOWED_ORIGINS"),
                        help="browser origins allowed to open WebSockets, comma list; `*` for any, "
                             "development only (CHAT_BACKEND_ALLOWED_ORIGINS)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    host, _, port = args.bind.rpartition(":")
    try:
        authenticator = tollgate.Authenticator.from_env(SERVICE)
        gate = tollgate.ToolGate.from_env(SERVICE)
        try:
            service_tokens = tollgate.ServiceTokenSource.from_env()
        except tollgate.AuthError as err:
            if err.code != "invalid_config":
                raise
            service_tokens = None
        origins = None
        if args.allowed_origins is not None:
            origins = [o for o in args.allowed_origins.split(",")]
        ws_auth = tollgate.WsAuth.from_env(authenticator, gate=gate, allowed_origins=origins)
    except tollgate.AuthError as err:
        print(f"fastapi-backend: {err}", file=sys.stderr)
        return 2
    peer_url = args.peer_url or f"http://{args.bind}"
    app = create_app(authenticator, gate, peer_url=peer_url, service_tokens=service_tokens, ws_auth=ws_auth)
    logging.getLogger(SERVICE).info("fastapi-backend listening on %s, issuer %s", args.bind, authenticator.issuer)
    tollgate.asgi.serve(
        app,
        ws_auth,
        host=host.strip("[]"),
        port=int(port),
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=tollgate.MAX_MESSAGE_BYTES,
        lifespan="off",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
