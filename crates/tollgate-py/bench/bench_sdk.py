"""Figures of the Python SDK for BENCHMARKS.md (run by scripts/bench-python).

Measures, in one process, on the same tokens:
- a cached ``Authenticator.authenticate`` (a token judged before);
- a first (uncached) ``authenticate`` of fresh tokens, against the Rust
  core's own ``Validator::validate`` of the same kind of tokens, timed in Rust
  (``tollgate._native._core_validation_ns``);
- PyJWT's ``decode`` with audience and issuer checks, EdDSA and HS256.

Prints a Markdown table. Benchmarks measure; nothing here is a test.
"""

from __future__ import annotations

import os
import sys
import time

import jwt

from tollgate import _native
from tollgate.testing import TestIssuer

N = int(os.environ.get("BENCH_PY_N", "20000"))
SECRET = "a-benchmark-shared-secret-of-at-least-32-bytes"


def per_call_ns(fn, tokens, rounds=3):
    """Best of ``rounds`` mean times of ``fn`` over ``tokens``, in ns."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for t in tokens:
            fn(t)
        best = min(best, (time.perf_counter_ns() - start) / len(tokens))
    return best


def first_call_ns(auth, tokens):
    """Mean time of the first ``authenticate`` of each token, in ns."""
    start = time.perf_counter_ns()
    for t in tokens:
        auth.authenticate(t)
    return (time.perf_counter_ns() - start) / len(tokens)


def measure(alg: str):
    issuer = TestIssuer(hmac_secret=SECRET) if alg == "HS256" else TestIssuer()
    auth = issuer.authenticator()
    fresh = [issuer.user(f"u{i}", email=f"u{i}@example.com") for i in range(N)]
    baseline = [issuer.user(f"b{i}", email=f"b{i}@example.com") for i in range(N)]
    core_ns = _native._core_validation_ns(issuer, baseline)
    uncached_ns = first_call_ns(auth, fresh)
    # A cache hit: 1 000 tokens judged once by an authenticator with room
    # for all of them, then again and again.
    warm = issuer.authenticator()
    cached = fresh[: min(N, 1000)]
    for t in cached:
        warm.authenticate(t)
    cached_ns = per_call_ns(warm.authenticate, cached * max(1, N // len(cached)))

    if alg == "HS256":
        key = SECRET
    else:
        key = jwt.PyJWK(issuer.jwks()["keys"][0]).key
    aud = issuer.audiences[0]

    def pyjwt(t):
        jwt.decode(t, key, algorithms=[alg], audience=aud, issuer=issuer.issuer)

    pyjwt_ns = per_call_ns(pyjwt, fresh[: min(N, 5000)])
    return core_ns, uncached_ns, cached_ns, pyjwt_ns


def main() -> int:
    print(f"PyJWT {jwt.__version__}, Python {sys.version.split()[0]}, {N} tokens per alg")
    print()
    print("| alg | Rust core validate | Python first authenticate | ratio to core | Python cached authenticate | PyJWT decode | PyJWT / first | PyJWT / cached |")
    print("|---|---|---|---|---|---|---|---|")
    for alg in ("EdDSA", "HS256"):
        core, first, cached, pyjwt = measure(alg)
        print(
            f"| {alg} | {core / 1000:.2f} µs | {first / 1000:.2f} µs | {first / core:.2f}× "
            f"| {cached / 1000:.2f} µs | {pyjwt / 1000:.2f} µs | {pyjwt / first:.1f}× | {pyjwt / cached:.1f}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
