"""httpx and httpx-sse failures as the project's error types: one line, what to do, no secret.

Every HTTP provider maps transport failures the same way; only the hint for an unreachable
server differs (which variable or setting points at it).
"""

from __future__ import annotations

import httpx
from httpx_sse import SSEError

from ensemble_nb.core.errors import (
    ConnectError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ServerError,
)


def transport_error(exc: httpx.HTTPError | SSEError, *, who: str, base_url: str,
                    unreachable: str) -> ProviderError:
    """The error to raise for ``exc``; ``unreachable`` completes "cannot reach URL: ...".

    A provider raises it ``from exc``.
    """
    if isinstance(exc, SSEError):
        return ProtocolError(f"{who}: unreadable event stream from {base_url}: {exc}")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectError(f"{who}: cannot reach {base_url}: {unreachable}")
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{who}: {base_url} sent nothing for too long ({type(exc).__name__}); the "
                               "server may be overloaded: retry, or pass a longer httpx timeout")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return ServerError(f"{who}: the connection to {base_url} dropped mid-answer ({type(exc).__name__}); retry")
    return ProviderError(f"{who}: the request to {base_url} failed ({type(exc).__name__}: {exc})")
