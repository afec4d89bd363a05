"""Fixtures for the conformance suite: SDK clients pointed at a running Tollgate.

run.sh starts the gateway and its mock upstreams and exports:
  TOLLGATE_URL         e.g. http://127.0.0.1:8080 (no trailing slash)
  TOLLGATE_KEY         a virtual key
  TOLLGATE_MASTER_KEY  the master key, for the admin API
"""

import os

import anthropic
import httpx
import openai
import pytest

# The models the chat-completions and Messages doors are driven against: one
# served by an OpenAI-format upstream, one by an Anthropic-format upstream.
MODELS = ["gpt-mock", "claude-mock"]

# The models the Responses door (/v1/responses) is driven against, one per
# backend kind: translated to chat completions, translated to Anthropic's
# Messages API, and passed through untouched to an upstream that serves
# /v1/responses itself (a provider with `responses = true`).
RESPONSES_MODELS = ["gpt-mock", "claude-mock", "resp-mock"]

# What the mock upstream is configured to answer (see run.sh).
OUTPUT_TOKENS = 8
REASONING_TOKENS = 2
CACHED_TOKENS = 3

# Requests against the gateway never take long; fail fast when one hangs.
TIMEOUT = 30.0


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite through gateway/tests/conformance/run.sh", returncode=2)
    return value


@pytest.fixture(scope="session")
def base_url():
    return _env("TOLLGATE_URL").rstrip("/")


@pytest.fixture(scope="session")
def api_key():
    return _env("TOLLGATE_KEY")


@pytest.fixture(scope="session")
def master_key():
    return _env("TOLLGATE_MASTER_KEY")


@pytest.fixture(scope="session")
def oai(base_url, api_key):
    """The OpenAI SDK on the OpenAI door. No retries, so a 429 surfaces at once."""
    return openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def ant(base_url, api_key):
    """The Anthropic SDK on the Anthropic door, authenticating with `x-api-key` only.

    That is what Claude Code and earlier SDK releases send for an API key. The
    pinned SDK sends `api_key` as a Bearer token instead (see `ant_sdk_default`),
    so the header is set here by hand and `Authorization` left out.
    """
    return anthropic.Anthropic(
        base_url=base_url,
        api_key=api_key,
        default_headers={"X-Api-Key": api_key, "Authorization": anthropic.omit},
        max_retries=0,
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="session")
def ant_sdk_default(base_url, api_key):
    """The Anthropic SDK given `api_key`, sending whatever header the SDK picks for it."""
    return anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def ant_bearer(base_url, api_key):
    """The Anthropic SDK authenticating with a Bearer token (auth_token)."""
    return anthropic.Anthropic(base_url=base_url, auth_token=api_key, max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def http(base_url):
    """A plain HTTP client, for what the SDKs do not expose."""
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        yield client
