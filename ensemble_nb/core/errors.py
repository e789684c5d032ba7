"""Error types. Every message is one line that tells the user what to do.

Messages never contain API keys: providers build them from URLs, status codes and the
provider's own error text, after :func:`redact` has removed anything that looks like a secret.
"""

from __future__ import annotations

import os
import re


class EnsembleError(Exception):
    """Base of every error this package raises on purpose."""


class UserError(EnsembleError):
    """Bad input from the user: a flag, a model id, a missing key, an empty prompt."""


class ProviderError(EnsembleError):
    """A provider call failed. ``retryable`` says whether trying again may help."""

    kind = "provider_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(redact(message))
        self.status = status
        self.retry_after = retry_after


class ConnectError(ProviderError):
    kind = "connect_error"
    retryable = True


class RateLimited(ProviderError):
    kind = "rate_limited"
    retryable = True


class ServerError(ProviderError):
    kind = "server_error"
    retryable = True


class ProviderTimeout(ProviderError):
    """The server accepted the request but sent nothing for longer than the timeout."""

    kind = "timeout"
    retryable = True


class AuthError(ProviderError):
    kind = "auth_error"


class BadRequest(ProviderError):
    kind = "bad_request"


class ContextTooLong(ProviderError):
    kind = "context_too_long"


class ProtocolError(ProviderError):
    """The provider answered something we cannot read (bad SSE, bad JSON, wrong type)."""

    kind = "protocol_error"


_SECRET_PATTERNS = (
    re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+(?=@)", re.IGNORECASE),  # user:password@ in a URL
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"\b(sk|pk|rk|or|ak|key)-[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|x-api-key|x-goog-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
)


def redact(text: str) -> str:
    """Remove anything that looks like a credential, and the values of known key variables."""
    for name, value in os.environ.items():
        if value and len(value) >= 8 and _looks_like_key_var(name):
            text = text.replace(value, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + "[redacted]", text)
    return text


def _looks_like_key_var(name: str) -> bool:
    upper = name.upper()
    return upper.endswith(("_API_KEY", "_TOKEN", "_SECRET", "_KEY"))
