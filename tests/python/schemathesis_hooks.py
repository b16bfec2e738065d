"""Credentials for the schemathesis run of test_openapi.py (loaded through
SCHEMATHESIS_HOOKS): an admin bearer token for the user and admin API, and
the Basic client authentication of a client with scope `introspect` for the
OAuth endpoints and the revocation feed.

The admin token is fetched again every second: the run itself may revoke
every token of the admin (it finds the admin's id in GET /v1/admin/users),
and a fresh login after a revocation is valid again.
"""

import base64
import json
import os
import urllib.request

import schemathesis

ISSUER = os.environ["TOLLGATE_SCHEMATHESIS_ISSUER"]


@schemathesis.auth(refresh_interval=1).apply_to(path_regex="^/v1/(?!revocations)")
class AdminBearer:
    def get(self, case, ctx):
        body = json.dumps({
            "email": os.environ["TOLLGATE_SCHEMATHESIS_ADMIN_EMAIL"],
            "password": os.environ["TOLLGATE_SCHEMATHESIS_ADMIN_PASSWORD"],
        }).encode()
        request = urllib.request.Request(
            f"{ISSUER}/v1/auth/login", data=body, method="POST",
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.load(response)["access_token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.auth().apply_to(path_regex="^/(oauth/|v1/revocations)")
class ClientBasic:
    def get(self, case, ctx):
        pair = (f'{os.environ["TOLLGATE_SCHEMATHESIS_CLIENT_ID"]}:'
                f'{os.environ["TOLLGATE_SCHEMATHESIS_CLIENT_SECRET"]}')
        return base64.b64encode(pair.encode()).decode()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Basic {data}"
