"""OpenRouter helpers: routing preferences and priors from the published endpoint stats."""

from __future__ import annotations

import httpx
import pytest

from ensemble_nb.core.errors import ProtocolError, UserError
from ensemble_nb.core.providers.openrouter import (
    endpoints_url,
    fetch_endpoints,
    parse_endpoints,
    routing_prefs,
    seed_spec,
    with_routing,
)
from ensemble_nb.core.registry import resolve

# The shape of GET /api/v1/models/{author}/{slug}/endpoints (trimmed).
PAYLOAD = {"data": {"id": "meta-llama/llama-3.1-8b-instruct", "name": "Llama 3.1 8B", "endpoints": [
    {"name": "DeepInfra | llama", "provider_name": "DeepInfra", "tag": "deepinfra/bf16", "context_length": 131072,
     "pricing": {"prompt": "0.00000002", "completion": "0.00000003"}, "uptime_last_30m": 99.5,
     "supported_parameters": ["max_tokens", "temperature", "logprobs", "top_logprobs"],
     "latency_last_30m": {"p50": 0.4, "p75": 0.5, "p90": 0.9, "p99": 2.0},
     "throughput_last_30m": {"p50": 90.0, "p75": 80.0, "p90": 60.0, "p99": 20.0}},
    {"name": "Fast | llama", "provider_name": "Fast", "tag": "fast", "context_length": 32768,
     "pricing": {"prompt": "0.0000001", "completion": "0.0000002"}, "uptime_last_30m": None,
     "supported_parameters": ["max_tokens", "temperature"],
     "latency_last_30m": {"p50": 150, "p90": 300}, "throughput_last_30m": {"p50": 400.0}},
    {"name": "Nova | llama", "provider_name": "Nova", "tag": "nova", "context_length": 131072,
     "pricing": {"prompt": "0.00000004", "completion": "0.00000005"},
     "supported_parameters": ["logprobs", "top_logprobs"], "latency_last_30m": None,
     "throughput_last_30m": {"p50": 70.0}},
]}}


def test_routing_prefs_require_parameters_and_merge_into_a_body() -> None:
    prefs = routing_prefs(sort="throughput", ignore=["Fast"])
    assert prefs == {"require_parameters": True, "sort": "throughput", "ignore": ["Fast"]}
    body = with_routing({"model": "m", "provider": {"order": ["Nova"]}}, prefs)
    assert body["provider"] == {"order": ["Nova"], **prefs} and body["model"] == "m"


def test_endpoints_url() -> None:
    assert endpoints_url("openrouter:meta-llama/llama-3.1-8b-instruct") == (
        "https://openrouter.ai/api/v1/models/meta-llama/llama-3.1-8b-instruct/endpoints")
    with pytest.raises(UserError, match="author/slug"):
        endpoints_url("gpt-4o")


def test_parse_endpoints_units_and_parameters() -> None:
    deep, fast, nova = parse_endpoints(PAYLOAD)
    assert (deep.provider, deep.ttft_p50, deep.ttft_p90, deep.tps_p50) == ("DeepInfra", 0.4, 0.9, 90.0)
    assert deep.uptime == pytest.approx(0.995) and deep.price_in == 0.02 and deep.price_out == 0.03
    assert deep.logprobs and deep.top_logprobs and not fast.logprobs
    assert fast.ttft_p50 == 0.15 and fast.uptime is None  # milliseconds recognised
    assert nova.ttft_p50 is None and nova.tps_p50 == 70.0
    with pytest.raises(ProtocolError, match="unexpected shape"):
        parse_endpoints({"data": []})


def test_seed_spec_uses_only_endpoints_that_honour_logprobs() -> None:
    spec = resolve("openrouter:meta-llama/llama-3.1-8b-instruct")
    seeded = seed_spec(spec, parse_endpoints(PAYLOAD))
    assert seeded.typical_ttft == 0.4 and seeded.typical_tps == 80.0  # Fast is excluded
    assert (seeded.price_in, seeded.price_out) == (0.03, 0.04) and seeded.logprobs
    plain = seed_spec(spec.model_copy(update={"logprobs": False}), parse_endpoints(PAYLOAD))
    assert plain.typical_tps == 90.0 and plain.typical_ttft == pytest.approx(0.275)


def test_seed_spec_without_any_logprob_endpoint_turns_logprobs_off() -> None:
    spec = resolve("openrouter:meta-llama/llama-3.1-8b-instruct")
    only_fast = parse_endpoints({"data": {"endpoints": [PAYLOAD["data"]["endpoints"][1]]}})
    seeded = seed_spec(spec, only_fast)
    assert not seeded.logprobs and seeded.max_top_k == 0 and seeded.typical_tps == 400.0
    assert seed_spec(spec, []) == spec


async def test_fetch_endpoints_reads_the_listing_and_never_fails_a_run() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if "broken" in request.url.path:
            return httpx.Response(200, content=b"<html>")
        if "missing" in request.url.path:
            return httpx.Response(404, json={"error": {"message": "not found"}})
        return httpx.Response(200, json=PAYLOAD)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        stats = await fetch_endpoints(client, "openrouter:meta-llama/llama-3.1-8b-instruct")
        assert [e.provider for e in stats] == ["DeepInfra", "Fast", "Nova"]
        assert "authorization" not in {k.lower() for k in client.headers}
        assert await fetch_endpoints(client, "a/missing") == []
        assert await fetch_endpoints(client, "a/broken") == []
    assert seen[0] == "https://openrouter.ai/api/v1/models/meta-llama/llama-3.1-8b-instruct/endpoints"
