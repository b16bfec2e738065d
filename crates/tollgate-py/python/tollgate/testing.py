"""Real tokens for a service's own tests (CONTRACT §1).

:class:`TestIssuer` is the Rust SDK's test issuer: a real EdDSA key, tokens
minted by the core minter with exactly the token service's claims and
header, and authenticators that trust only that key (and see the issuer's
revocations at once). A service's tests therefore run the production
validation path and cannot sign with a secret the service does not know.

This module is also a pytest plugin (registered through the ``pytest11``
entry point), providing the fixtures ``tollgate_issuer`` (a fresh
:class:`TestIssuer` per test) and ``tollgate_authenticator`` (its
authenticator)::

    def test_admin_route(tollgate_issuer):
        app = create_app(tollgate_issuer.authenticator())
        token = tollgate_issuer.user("u1", roles=["admin"])
        ...
"""

from __future__ import annotations

from ._native import TestIssuer

__all__ = ["TestIssuer"]

try:
    import pytest
except ImportError:  # not under pytest: the fixtures are not needed
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def tollgate_issuer() -> TestIssuer:
        """A fresh test issuer (``https://tollgate.test``, audience ``api``)."""
        return TestIssuer()

    @pytest.fixture
    def tollgate_authenticator(tollgate_issuer: TestIssuer):
        """An authenticator trusting only ``tollgate_issuer``."""
        return tollgate_issuer.authenticator()
