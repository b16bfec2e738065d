"""`tollgate.AuthError`: the one exception of the SDK.

Raised by the extension (``tollgate._native``) with the SDK's own stable
code and the HTTP answer the Rust SDK's axum glue would give; the framework
glue sends exactly that answer. Nothing here decides anything.
"""

import json
from typing import Dict, Iterable, Optional, Tuple

__all__ = ["AuthError"]


class AuthError(Exception):
    """A refused token, caller or request, or the SDK failing to decide.

    Attributes:
        code: the stable machine code (``expired``, ``revoked``,
            ``wrong_audience``, ``permission_denied``, ``rate_limited``,
            ``token_service_unavailable``, ... see docs/errors.md).
        description: the human sentence (never contains a token or secret).
        status: the HTTP status the Rust SDK answers with (401, 403, 429,
            503, ...).
        headers: the headers of that answer (``www-authenticate`` per
            RFC 6750, ``retry-after``, ``cache-control``), names lower-case.
        body: the JSON body ``{"error": code, "error_description": ...}``
            (plus ``retry_after_ms`` for ``rate_limited``).
        retry_after_ms: milliseconds until a retry may succeed
            (``rate_limited`` only), else None.
    """

    code: str
    description: str
    status: int
    headers: Dict[str, str]
    body: Dict[str, object]
    retry_after_ms: Optional[int]

    def __init__(
        self,
        code: str,
        description: str,
        status: int = 401,
        headers: Iterable[Tuple[str, str]] = (),
        body: str = "",
        retry_after_ms: Optional[int] = None,
    ) -> None:
        headers = tuple(headers)
        # The constructor's arguments: an AuthError pickles and copies.
        super().__init__(code, description, status, headers, body, retry_after_ms)
        self.code = code
        self.description = description
        self.status = status
        self.headers = dict(headers)
        self.body = json.loads(body) if body else {"error": code, "error_description": description}
        self.retry_after_ms = retry_after_ms

    def __str__(self) -> str:
        return self.description

    def __repr__(self) -> str:
        return f"AuthError(code={self.code!r}, status={self.status}, description={self.description!r})"
