"""Drives the Rust interop peer (`crates/tollgate-core/examples/interop.rs`)
and holds the helpers shared by the `test_core_*` modules: base64url, key
generation and raw JWS signing with PyJWT/cryptography, independent of
Tollgate's code.

scripts/python-tests builds the peer and exports its path as
TOLLGATE_INTEROP_BIN.
"""

import base64
import json
import os
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

ISSUER = "https://auth.tollgate.test"
AUDIENCE = ["api"]

ALGORITHMS = get_default_algorithms()

_REPO = Path(__file__).resolve().parents[2]


def peer_path():
    path = os.environ.get("TOLLGATE_INTEROP_BIN") or str(
        _REPO / "target" / "debug" / "examples" / "interop"
    )
    if not Path(path).is_file():
        raise RuntimeError(
            f"the interop peer is not built at {path}: run scripts/python-tests"
        )
    return path


def call(request):
    """Sends one request to the peer and returns its JSON answer."""
    done = subprocess.run(
        [peer_path()],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    answer = json.loads(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"peer failed: {answer} {done.stderr!r}")
    return answer


def mint(alg, token_type="access", **extra):
    return call(
        {
            "op": "mint",
            "alg": alg,
            "issuer": ISSUER,
            "audience": AUDIENCE + ["chat"],
            "token_type": token_type,
            **extra,
        }
    )


def validate(token=None, tokens=None, jwks=None, expect="access", **extra):
    request = {
        "op": "validate",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "expect": expect,
        "jwks": jwks,
        **extra,
    }
    if tokens is not None:
        request["tokens"] = tokens
        return call(request)["results"]
    request["token"] = token
    return call(request)


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(header, payload):
    """`b64(header).b64(payload)` from dicts, strings or bytes."""

    def enc(part):
        if isinstance(part, dict):
            part = json.dumps(part, separators=(",", ":"))
        return b64(part)

    return f"{enc(header)}.{enc(payload)}"


class PyKey:
    """A key pair made by `cryptography`, signing through PyJWT's own
    algorithm objects, published as a JWK by PyJWT."""

    def __init__(self, alg, kid):
        self.alg = alg
        self.kid = kid
        if alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(alg)
        self.public = self.private.public_key()

    def jwk(self):
        jwk = ALGORITHMS[self.alg].to_jwk(self.public, as_dict=True)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def header(self, **extra):
        return {"alg": self.alg, "kid": self.kid, "typ": "at+jwt", **extra}

    def sign(self, signing_input):
        if isinstance(signing_input, str):
            signing_input = signing_input.encode()
        return ALGORITHMS[self.alg].sign(signing_input, self.private)

    def token(self, payload, header=None):
        """Signs exactly the bytes given (dicts are compact JSON)."""
        signing_input = compact(header if header is not None else self.header(), payload)
        return f"{signing_input}.{b64(self.sign(signing_input))}"


def jwks(*keys):
    return {"keys": [k.jwk() for k in keys]}
