"""The service-to-service call: this service asks a peer (by default
itself) for its agents with a service token from
``tollgate.ServiceTokenSource``. The peer's route accepts only service
tokens."""

from typing import Any, Optional

import httpx

import tollgate


class Peer:
    """The peer holding the agents."""

    def __init__(self, base_url: str, tokens: Optional[tollgate.ServiceTokenSource]) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.http = httpx.AsyncClient(timeout=5.0)

    async def agents(self) -> Any:
        """The peer's agents; raises ``PeerError`` with a short code."""
        if self.tokens is None:
            raise PeerError("no_service_credentials")
        # A token the peer refuses (say, revoked) is dropped and fetched
        # again once.
        for attempt in range(2):
            try:
                token = await self.tokens.token_async()
            except tollgate.AuthError:
                raise PeerError("service_token_unavailable") from None
            try:
                response = await self.http.get(
                    f"{self.base_url}/internal/agents",
                    headers={"authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError:
                raise PeerError("peer_unreachable") from None
            if response.status_code == 401 and attempt == 0:
                self.tokens.invalidate()
                continue
            if response.status_code >= 400:
                raise PeerError("peer_refused")
            try:
                return response.json().get("agents")
            except ValueError:
                raise PeerError("peer_invalid_answer") from None
        raise PeerError("peer_refused")


class PeerError(Exception):
    """Why the agents cannot be had (a short code)."""
