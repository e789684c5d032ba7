"""What every HTTP provider shares: its spec, its httpx client and who closes that client, and
how transport failures become the project's errors.

A client passed in (tests' MockTransport, a client shared by a run's remote members) belongs to
the caller; a client the provider made itself is closed by :meth:`aclose`. Transport failures
map the same way for every vendor; only the hint for an unreachable server differs.
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
from ensemble_nb.core.registry import ModelSpec

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)


class HttpProvider:
    def __init__(self, spec: ModelSpec, client: httpx.AsyncClient | None, timeout: httpx.Timeout | None,
                 api_key: str | None) -> None:
        self._spec = spec
        self._api_key = (api_key if api_key is not None else spec.api_key()) or None
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout or DEFAULT_TIMEOUT)

    @property
    def model_id(self) -> str:
        return self._spec.id

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


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
