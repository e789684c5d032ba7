"""OpenRouter specifics, as pure functions the OpenAI-compatible provider and the planner can use.

* :func:`routing_prefs` builds the ``provider`` object of a request, so OpenRouter only routes
  to endpoints that honour every parameter sent (``logprobs``, ``top_logprobs``): without
  ``require_parameters`` an endpoint that ignores them answers, silently, with no probabilities.
* :func:`parse_endpoints` reads ``GET /api/v1/models/{author}/{slug}/endpoints`` (latency,
  throughput, uptime, prices, supported parameters per serving provider), and :func:`seed_spec`
  turns it into a spec's priors until the latency tracker has measured the model itself.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from ensemble_nb.core.errors import ProtocolError, UserError
from ensemble_nb.core.registry import ModelSpec

OPENROUTER_API = "https://openrouter.ai/api/v1"
Sort = Literal["price", "throughput", "latency"]

# OpenRouter has reported latency both in seconds and in milliseconds over time; no real
# first-token latency is above this many seconds at the median, so larger values are ms.
_MAX_SECONDS = 30.0


def routing_prefs(*, sort: Sort | None = None, require_parameters: bool = True, order: Sequence[str] = (),
                  ignore: Sequence[str] = (), allow_fallbacks: bool | None = None,
                  data_collection: Literal["allow", "deny"] | None = None) -> dict[str, Any]:
    """The ``provider`` field of an OpenRouter chat-completions body."""
    prefs: dict[str, Any] = {"require_parameters": require_parameters}
    if sort is not None:
        prefs["sort"] = sort
    if order:
        prefs["order"] = list(order)
    if ignore:
        prefs["ignore"] = list(ignore)
    if allow_fallbacks is not None:
        prefs["allow_fallbacks"] = allow_fallbacks
    if data_collection is not None:
        prefs["data_collection"] = data_collection
    return prefs


def with_routing(body: Mapping[str, Any], prefs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAI-shaped ``body`` with routing preferences merged into ``provider``."""
    return {**body, "provider": {**(body.get("provider") or {}), **prefs}}


def endpoints_url(model: str, base_url: str = OPENROUTER_API) -> str:
    """The endpoints listing of ``author/slug`` (an ``openrouter:`` prefix is allowed)."""
    name = model.removeprefix("openrouter:")
    author, _, slug = name.partition("/")
    if not author or not slug:
        raise UserError(f"'{model}' is not an OpenRouter model name: use author/slug, e.g. "
                        "meta-llama/llama-3.1-8b-instruct")
    return f"{base_url.rstrip('/')}/models/{author}/{slug}/endpoints"


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """One provider serving the model. Times in seconds, rates in tokens/s, prices USD/M tokens."""

    provider: str
    tag: str
    ttft_p50: float | None
    ttft_p90: float | None
    tps_p50: float | None
    uptime: float | None
    price_in: float | None
    price_out: float | None
    context_length: int | None
    parameters: frozenset[str]

    @property
    def logprobs(self) -> bool:
        return "logprobs" in self.parameters

    @property
    def top_logprobs(self) -> bool:
        return "top_logprobs" in self.parameters


def parse_endpoints(payload: Mapping[str, Any]) -> list[EndpointStats]:
    """The endpoints of an endpoints-listing response (``{"data": {"endpoints": [...]}}``)."""
    try:
        raw = payload["data"]["endpoints"]
        return [_endpoint(e) for e in raw]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ProtocolError(f"OpenRouter's endpoints listing has an unexpected shape ({exc!r}); "
                            "the API may have changed") from exc


def _endpoint(e: Mapping[str, Any]) -> EndpointStats:
    latency = e.get("latency_last_30m") or {}
    throughput = e.get("throughput_last_30m") or {}
    pricing = e.get("pricing") or {}
    uptime = _number(e.get("uptime_last_30m"))
    return EndpointStats(
        provider=str(e.get("provider_name") or e.get("name") or "?"), tag=str(e.get("tag") or ""),
        ttft_p50=_seconds(latency.get("p50")), ttft_p90=_seconds(latency.get("p90")),
        tps_p50=_number(throughput.get("p50")), uptime=None if uptime is None else uptime / 100.0,
        price_in=_per_million(pricing.get("prompt")), price_out=_per_million(pricing.get("completion")),
        context_length=int(e["context_length"]) if e.get("context_length") else None,
        parameters=frozenset(str(p) for p in e.get("supported_parameters") or ()),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)  # prices come as decimal strings
    except ValueError:
        return None
    return number if number >= 0 else None


def _seconds(value: object) -> float | None:
    number = _number(value)
    return None if number is None else number / 1000.0 if number > _MAX_SECONDS else number


def _per_million(value: object) -> float | None:
    number = _number(value)  # OpenRouter prices are USD per token
    return None if number is None else round(number * 1e6, 6)


async def fetch_endpoints(client: httpx.AsyncClient, model: str, *, base_url: str = OPENROUTER_API,
                          wait: float = 5.0) -> list[EndpointStats]:
    """The published endpoint stats of ``model``; empty when unavailable, since they only seed
    priors and must never hold up or fail a run. The listing needs no API key."""
    try:
        # httpx's own per-request timeout, so a slow listing gives up without cancelling a task.
        response = await client.get(endpoints_url(model, base_url), timeout=wait)
        if response.status_code != 200:
            return []
        return parse_endpoints(response.json())
    except (httpx.HTTPError, ValueError, ProtocolError):
        return []


def usable(endpoints: Sequence[EndpointStats], *, logprobs: bool) -> list[EndpointStats]:
    """The endpoints ``require_parameters`` would still route to when logprobs are asked for."""
    return [e for e in endpoints if e.logprobs and e.top_logprobs] if logprobs else list(endpoints)


def seed_spec(spec: ModelSpec, endpoints: Sequence[EndpointStats]) -> ModelSpec:
    """``spec`` with priors from OpenRouter's published stats: the median over the endpoints it
    may be routed to (those honouring logprobs when the spec asks for them)."""
    pool = usable(endpoints, logprobs=spec.logprobs)
    update: dict[str, Any] = {}
    if spec.logprobs and not pool and endpoints:
        # No endpoint returns logprobs: say so, rather than have require_parameters fail every call.
        update.update(logprobs=False, max_top_k=0)
        pool = list(endpoints)
    ttfts = [e.ttft_p50 for e in pool if e.ttft_p50]
    rates = [e.tps_p50 for e in pool if e.tps_p50]
    ins = [e.price_in for e in pool if e.price_in is not None]
    outs = [e.price_out for e in pool if e.price_out is not None]
    if ttfts:
        update["typical_ttft"] = statistics.median(ttfts)
    if rates:
        update["typical_tps"] = statistics.median(rates)
    if ins and outs:
        update["price_in"], update["price_out"] = statistics.median(ins), statistics.median(outs)
    return spec.model_copy(update=update) if update else spec
