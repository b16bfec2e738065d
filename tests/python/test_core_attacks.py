"""SECURITY.md attack tokens made with Python libraries (PyJWT,
`cryptography`, `hmac`), each presented to the Rust core through the interop
peer and required to fail with its exact error code.

The trusted key set holds the peer's own freshly minted EdDSA, ES256 and
RS256 keys (for key-confusion attacks on *our* public keys) and three keys
made here with `cryptography` (to sign otherwise-valid tokens that carry one
defect each). All cases run in one batch call per validator setting.
"""

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
import jwt

from core_peer import ISSUER, PyKey, b64, compact, mint, unb64, validate

NOW = int(time.time())
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class World:
    """Keys and tokens shared by every case, made once per module."""

    def __init__(self):
        self.ours = {alg: mint(alg) for alg in ("EdDSA", "ES256", "RS256")}
        self.service = mint("EdDSA", token_type="service")
        self.py = {alg: PyKey(alg, f"py-{alg.lower()}") for alg in ("EdDSA", "ES256", "RS256")}
        self.attacker = PyKey("EdDSA", "attacker")
        keys = [k for m in self.ours.values() for k in m["jwks"]["keys"]]
        keys += [m for m in self.service["jwks"]["keys"]]
        keys += [k.jwk() for k in self.py.values()]
        self.jwks = {"keys": keys}

    def public_key(self, alg):
        [jwk] = self.ours[alg]["jwks"]["keys"]
        return jwt.PyJWK(jwk).key

    def kid(self, alg):
        return self.ours[alg]["kid"]


def claims(**changes):
    base = {
        "iss": ISSUER,
        "sub": "user-77",
        "aud": ["api", "chat"],
        "exp": NOW + 600,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "jti": "py-attack",
        "client_id": "web",
        "scope": "openid",
        "token_type": "access",
        "sid": "py-sid",
        "email": "eve@example.com",
        "roles": ["user"],
        "plan": "free",
        "permissions": ["chat:send"],
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def hs256(header, payload, secret):
    signing_input = compact(header, payload)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def self_signed_cert(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    start = datetime.now(timezone.utc) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .sign(key.private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def none_cases(w):
    out = []
    for alg in ("none", "None", "NONE", "nOnE"):
        header = {"alg": alg, "kid": w.kid("EdDSA"), "typ": "at+jwt"}
        out.append((f"alg {alg}, empty signature", f"{compact(header, claims())}.", "malformed"))
        out.append((f"alg {alg}, garbage signature", f"{compact(header, claims())}.{b64(b'garbage')}", "algorithm_not_allowed"))
    # PyJWT itself makes the unsecured token (`header.payload.`).
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": w.kid("EdDSA"), "typ": "at+jwt"})
    out.append(("PyJWT alg none", token, "malformed"))
    return out


def key_confusion_cases(w):
    out = []
    for alg in ("EdDSA", "ES256", "RS256"):
        public = w.public_key(alg)
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        [jwk] = w.ours[alg]["jwks"]["keys"]
        secrets = {
            "PEM": pem,
            "PEM with leading newline": b"\n" + pem,
            "PEM with leading space": b" " + pem,
            "PEM, no final newline": pem.rstrip(b"\n"),
            "DER": der,
            "JWK JSON": json.dumps(jwk).encode(),
            "JWK JSON, compact": json.dumps(jwk, separators=(",", ":")).encode(),
        }
        if alg == "RS256":
            secrets["raw modulus (sig2n)"] = unb64(jwk["n"])
        header = {"alg": "HS256", "kid": w.kid(alg), "typ": "at+jwt"}
        for what, secret in secrets.items():
            out.append((f"HS256 keyed with our {alg} key as {what}", hs256(header, claims(), secret), "algorithm_not_allowed"))
    return out


def header_injection_cases(w):
    key = w.py["RS256"]
    attacker = w.attacker
    cert = base64.b64encode(self_signed_cert(key)).decode()
    thumb = b64(hashlib.sha256(self_signed_cert(key)).digest())
    out = [
        ("jku to a local JWKS", key.token(claims(), key.header(jku="http://127.0.0.1:9/jwks.json")), "header_not_allowed"),
        ("jku to localhost", key.token(claims(), key.header(jku="http://localhost/jwks.json")), "header_not_allowed"),
        ("x5u", key.token(claims(), key.header(x5u="http://127.0.0.1:9/cert.pem")), "header_not_allowed"),
        ("embedded jwk of the attacker", attacker.token(claims(), attacker.header(jwk=attacker.jwk())), "header_not_allowed"),
        ("embedded jwk under a trusted kid", attacker.token(claims(), {**key.header(), "alg": "EdDSA", "jwk": attacker.jwk()}), "header_not_allowed"),
        ("self-signed x5c of the signing key", key.token(claims(), key.header(x5c=[cert])), "header_not_allowed"),
        ("x5t#S256 of a certificate", key.token(claims(), key.header(**{"x5t#S256": thumb})), "header_not_allowed"),
        ("crit [exp]", key.token(claims(), key.header(crit=["exp"])), "unsupported_critical_header"),
        ("cty JWT", key.token(claims(), key.header(cty="JWT")), "header_not_allowed"),
        ("zip DEF", key.token(claims(), key.header(zip="DEF")), "header_not_allowed"),
        ("signed by an untrusted key under a trusted kid", attacker.token(claims(), {**key.header(), "alg": "EdDSA", "kid": w.py["EdDSA"].kid}), "bad_signature"),
        ("typ JWT", key.token(claims(), key.header(typ="JWT")), "wrong_typ"),
        ("no typ", key.token(claims(), {"alg": "RS256", "kid": key.kid}), "wrong_typ"),
        ("typ AT+JWT (accepted)", key.token(claims(), key.header(typ="AT+JWT")), "ok"),
        ("no kid", key.token(claims(), {"alg": "RS256", "typ": "at+jwt"}), "unknown_key"),
        ("Ed25519 instead of EdDSA", w.py["EdDSA"].token(claims(), w.py["EdDSA"].header(alg="Ed25519")), "algorithm_not_allowed"),
    ]
    for kid in [
        "../../../../etc/passwd",
        "../../../dev/null",
        "/dev/null\u0000",
        "' OR '1'='1",
        "x'; DROP TABLE keys; --",
        "1 UNION SELECT 'secret'",
        "|| ls",
        key.kid + "\u0000",
        key.kid.upper(),
        "\u202e" + key.kid,
    ]:
        out.append((f"kid {kid!r}", key.token(claims(), key.header(kid=kid)), "unknown_key"))
    return out


def ecdsa_cases(w):
    key = w.py["ES256"]
    signing_input = compact(key.header(), claims())
    der = key.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    n = P256_N.to_bytes(32, "big")

    def raw(r_bytes, s_bytes):
        return f"{signing_input}.{b64(r_bytes + s_bytes)}"

    real_r, real_s = r.to_bytes(32, "big"), s.to_bytes(32, "big")
    high_s = (P256_N - s).to_bytes(32, "big")
    return [
        ("ES256 genuine", raw(real_r, real_s), "ok"),
        ("ES256 all-zero signature", raw(bytes(32), bytes(32)), "bad_signature"),
        ("ES256 r = n, s = n", raw(n, n), "bad_signature"),
        ("ES256 r = n", raw(n, real_s), "bad_signature"),
        ("ES256 s = n", raw(real_r, n), "bad_signature"),
        ("ES256 s = 0", raw(real_r, bytes(32)), "bad_signature"),
        ("ES256 DER-encoded signature", f"{signing_input}.{b64(der)}", "bad_signature"),
        ("ES256 63-byte signature", f"{signing_input}.{b64((real_r + real_s)[:63])}", "bad_signature"),
        # The high-S twin verifies (ECDSA allows it): revocation is keyed on
        # jti, never on token bytes (the Rust tests pin that).
        ("ES256 high-S twin", raw(real_r, high_s), "ok"),
    ]


def claims_cases(w):
    key = w.py["EdDSA"]
    header = key.header()
    text = json.dumps(claims(), separators=(",", ":"))

    def raw_payload(payload_text):
        return key.token(payload_text.encode(), header)

    signing = compact(header, claims())
    h, p = signing.split(".")
    padded = lambda seg: seg + "=" * (-len(seg) % 4 or 4)  # noqa: E731
    standard = lambda seg: seg.replace("-", "+").replace("_", "/")  # noqa: E731
    # Claims whose encoding holds '-' or '_' so the standard alphabet differs.
    odd = next(
        c for c in (claims(email="e" + "?" * i + "@example.com") for i in range(64))
        if any(ch in b64(json.dumps(c, separators=(",", ":"))) for ch in "-_")
    )
    odd_p = b64(json.dumps(odd, separators=(",", ":")))

    def signed_segments(h_seg, p_seg):
        signing_input = f"{h_seg}.{p_seg}"
        return f"{signing_input}.{b64(key.sign(signing_input))}"

    jwe = ".".join(b64(part) for part in [
        json.dumps({"alg": "PBES2-HS256+A128KW", "enc": "A128GCM", "p2c": 2147483647, "p2s": b64(b"salt")}),
        b"\x01" * 40, b"\x02" * 12, b"\x03" * 64, b"\x04" * 16,
    ])
    return [
        ("genuine PyJWT-keyed token", key.token(claims()), "ok"),
        ("expired", key.token(claims(exp=NOW - 3600, iat=NOW - 7200, nbf=NOW - 7200)), "expired"),
        ("not yet valid", key.token(claims(nbf=NOW + 3600, exp=NOW + 7200)), "not_yet_valid"),
        ("issued in the future", key.token(claims(iat=NOW + 3600, exp=NOW + 7200)), "issued_in_future"),
        ("wrong issuer", key.token(claims(iss="https://evil.example")), "wrong_issuer"),
        ("issuer with trailing slash", key.token(claims(iss=ISSUER + "/")), "wrong_issuer"),
        ("wrong audience", key.token(claims(aud="other-api")), "wrong_audience"),
        ("audience case", key.token(claims(aud=["API"])), "wrong_audience"),
        ("user claims labelled service", key.token(claims(token_type="service")), "malformed"),
        ("missing jti", key.token(claims(jti=None)), "missing_claim"),
        ("exp as string", key.token(claims(exp=str(NOW + 600))), "malformed"),
        ("exp as float", key.token(claims(exp=NOW + 600.5)), "malformed"),
        ("NUL in email", key.token(claims(email="eve\u0000@example.com")), "malformed"),
        ("duplicate sub", raw_payload(text.replace('"sub":"user-77"', '"sub":"user-77","sub":"admin"')), "malformed"),
        ("duplicate exp", raw_payload(text.replace(f'"exp":{NOW + 600}', f'"exp":{NOW + 600},"exp":{NOW + 99999}')), "malformed"),
        ("duplicate alg in header", key.token(claims(), '{"alg":"EdDSA","alg":"none","kid":"%s","typ":"at+jwt"}' % key.kid), "malformed"),
        ("padded payload", signed_segments(h, padded(p)), "malformed"),
        ("padded header", signed_segments(padded(h), p), "malformed"),
        ("standard-alphabet payload", signed_segments(h, standard(odd_p)), "malformed"),
        ("5-segment JWE (PBES2, p2c 2^31-1)", jwe, "malformed"),
        ("oversized (9 KiB)", key.token(claims(pad="x" * 9000)), "token_too_large"),
        ("1 MB of garbage", "a" * (1 << 20), "token_too_large"),
        ("UTF-16 claims", key.token(text.encode("utf-16")), "malformed"),
        ("BOM before claims", key.token(b"\xef\xbb\xbf" + text.encode()), "malformed"),
        ("JSON serialization", json.dumps({"protected": h, "payload": p, "signature": "AA"}), "malformed"),
    ]


CASE_SETS = [none_cases, key_confusion_cases, header_injection_cases, ecdsa_cases, claims_cases]


@pytest.fixture(scope="module")
def outcomes():
    world = World()
    cases = [case for make in CASE_SETS for case in make(world)]
    names = [name for name, _, _ in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    results = validate(tokens=[token for _, token, _ in cases], jwks=world.jwks)
    by_name = {name: (expected, result) for (name, _, expected), result in zip(cases, results)}
    # Service-vs-access confusion: our own service token, presented where a
    # user token is expected, and the reverse.
    service = world.service["token"]
    user = world.ours["EdDSA"]["token"]
    by_name["service token as user token"] = ("wrong_token_type", validate(service, jwks=world.jwks, expect="access"))
    by_name["user token as service token"] = ("wrong_token_type", validate(user, jwks=world.jwks, expect="service"))
    by_name["service token as service token"] = ("ok", validate(service, jwks=world.jwks, expect="service"))
    return by_name


def test_every_case_gets_its_code(outcomes):
    failures = [
        f"{name}: expected {expected}, got {result['code']} ({result.get('reason', '')})"
        for name, (expected, result) in outcomes.items()
        if result["code"] != expected
    ]
    assert not failures, "\n".join(failures)
    assert len(outcomes) > 80


def test_a_jwks_with_private_or_weak_keys_is_refused():
    weak = PyKey("EdDSA", "x").jwk()
    weak["d"] = weak["x"]
    small_rsa = {"kty": "RSA", "kid": "r", "alg": "RS256", "n": b64(b"\xc5" * 128), "e": "AQAB"}
    mismatched = PyKey("ES256", "m").jwk()
    mismatched["alg"] = "EdDSA"
    token = PyKey("EdDSA", "x").token(claims())
    for keyset, code in [
        ({"keys": [weak]}, "invalid_jwk"),
        ({"keys": [small_rsa]}, "invalid_key"),
        ({"keys": [mismatched]}, "invalid_jwk"),
        ({"keys": "nope"}, "invalid_jwk"),
    ]:
        assert validate(token, jwks=keyset)["code"] == code, keyset
