"""Tollgate's core against PyJWT (with `cryptography`): tokens the Rust core
mints verify in PyJWT for every algorithm, and tokens PyJWT signs with its
own keys, published as JWKs, validate in the Rust core."""

import time

import jwt
import pytest

from core_peer import AUDIENCE, ISSUER, PyKey, jwks, mint, validate

HS256_SECRET = "an-interop-shared-secret-of-at-least-32-bytes"


def pyjwt_key(minted):
    if minted["alg"] == "HS256":
        return HS256_SECRET
    [jwk] = minted["jwks"]["keys"]
    return jwt.PyJWK(jwk).key


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "HS256"])
def test_pyjwt_verifies_tokens_we_mint(alg):
    minted = mint(alg, hs256_secret=HS256_SECRET)
    token = minted["token"]
    claims = jwt.decode(
        token,
        pyjwt_key(minted),
        algorithms=[alg],
        issuer=ISSUER,
        audience="api",
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": minted["kid"], "typ": "at+jwt"}
    assert claims == minted["claims"]
    assert claims["token_type"] == "access"
    assert claims["aud"] == ["api", "chat"]
    assert len(claims["roles"]) == 3 and len(claims["permissions"]) == 5
    if alg != "HS256":
        # Our published JWK is what PyJWT read; its kid is the RFC 7638
        # thumbprint PyJWT computes too.
        [jwk] = minted["jwks"]["keys"]
        assert jwk["use"] == "sig" and jwk["alg"] == alg
        assert jwt.PyJWK(jwk).key_id == minted["kid"]


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_pyjwt_refuses_our_token_under_another_key(alg):
    minted = mint(alg)
    other = mint(alg)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            minted["token"], pyjwt_key(other), algorithms=[alg], audience="api"
        )


def user_claims(now):
    return {
        "iss": ISSUER,
        "sub": "user-77",
        "aud": ["api", "chat"],
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": "py-jti-1",
        "client_id": "web",
        "scope": "openid tools",
        "token_type": "access",
        "sid": "py-sid-1",
        "email": "grace@example.com",
        "roles": ["user", "ops", "beta"],
        "plan": "team",
        "permissions": ["tool:search", "tool:code", "chat:send", "chat:read", "usage:read"],
    }


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_tokens_pyjwt_signs_validate_with_ours(alg):
    key = PyKey(alg, f"py-{alg.lower()}")
    now = int(time.time())
    claims = user_claims(now)
    token = jwt.encode(
        claims, key.private, algorithm=alg, headers={"kid": key.kid, "typ": "at+jwt"}
    )
    result = validate(token, jwks=jwks(key))
    assert result["valid"] is True, result
    assert result["claims"] == claims
    # One changed character in the signature and it is refused.
    head, _, sig = token.rpartition(".")
    tampered = f"{head}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    assert validate(tampered, jwks=jwks(key))["code"] == "bad_signature"


def test_hs256_tokens_pyjwt_signs_validate_with_the_shared_secret():
    now = int(time.time())
    claims = user_claims(now)
    token = jwt.encode(
        claims, HS256_SECRET, algorithm="HS256", headers={"kid": "hs-shared", "typ": "at+jwt"}
    )
    result = validate(token, hs256_secret=HS256_SECRET, hs256_kid="hs-shared")
    assert result["valid"] is True, result
    # Without HS256 in the allowed algorithms (the default for access
    # tokens is asymmetric-only) the same token is refused.
    refused = validate(
        token,
        hs256_secret=HS256_SECRET,
        hs256_kid="hs-shared",
        algorithms=["EdDSA", "ES256", "RS256"],
    )
    assert refused["code"] == "algorithm_not_allowed"


def test_service_tokens_from_pyjwt_are_service_tokens():
    key = PyKey("EdDSA", "py-svc")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "billing-worker",
        "aud": "api",
        "exp": now + 300,
        "iat": now,
        "jti": "py-svc-1",
        "client_id": "billing-worker",
        "scope": "usage:write",
        "token_type": "service",
    }
    token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "at+jwt"})
    assert validate(token, jwks=jwks(key), expect="service")["valid"] is True
    assert validate(token, jwks=jwks(key), expect="access")["code"] == "wrong_token_type"


def test_our_jwks_is_what_pyjwt_expects():
    minted = mint("EdDSA")
    keyset = jwt.PyJWKSet.from_dict(minted["jwks"])
    assert [k.key_id for k in keyset.keys] == [minted["kid"]]
    assert AUDIENCE == ["api"]
