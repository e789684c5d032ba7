"""What a provider must offer the conformance suite.

Each provider has a harness module here exposing ``HARNESS``; the suite in
``test_provider_conformance.py`` runs the same checks against every one of them.
"""

from __future__ import annotations

from typing import Protocol

from ensemble_nb.core.providers.base import Provider


class Harness(Protocol):
    name: str
    prompt: str
    """A prompt for which ``make()`` streams at least 8 tokens."""
    full_vocab: bool
    """Whether entropies are exact (``entropy_kind == "full"``)."""

    def make(self) -> Provider:
        """A fresh provider."""
        ...

    def assert_released(self, provider: Provider) -> None:
        """Fail if the provider still holds a connection, a thread or a running generation."""
        ...
