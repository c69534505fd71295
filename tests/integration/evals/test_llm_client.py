"""The judge's chat-completions client against the stand-in server over real HTTP: the reply and
its usage, the key in the Authorization header, and errors that say whether a retry may help."""

import pytest

from services.evals.llm import Endpoint, LlmError, chat, session
from tests.support.llm_standin import LlmStandIn

SCHEMA = {"type": "object", "properties": {"score": {"type": "number"}}}
MESSAGES = [{"role": "user", "content": "Is the answer correct?"}]


async def test_a_reply_with_usage_and_the_key_sent_as_bearer() -> None:
    with LlmStandIn(score=0.25) as llm:
        endpoint = Endpoint(llm.base_url, "sk-test-secret", {"X-Team": "evals"})
        async with session(4) as client:
            completion = await chat(client, endpoint, "gpt-4o-mini", MESSAGES, SCHEMA, 5)
        assert '"score":0.25' in completion.content
        assert completion.model == "gpt-4o-mini"
        assert completion.input_tokens == 4 and completion.total_tokens is not None
        assert llm.authorizations == ["Bearer sk-test-secret"]
        assert llm.requests[0]["response_format"]["json_schema"]["schema"] == SCHEMA
        assert llm.prompts() == ["Is the answer correct?"]


async def test_429_and_5xx_are_retryable_and_carry_retry_after() -> None:
    with LlmStandIn() as llm:
        llm.fail_next(429, retry_after=3, message="slow down")
        llm.fail_next(503)
        llm.fail_next(401, message="Incorrect API key provided")
        endpoint = Endpoint(llm.base_url, "sk-x")
        async with session(4) as client:
            errors = []
            for _ in range(3):
                with pytest.raises(LlmError) as caught:
                    await chat(client, endpoint, "m", MESSAGES, SCHEMA, 5)
                errors.append(caught.value)
    assert (errors[0].retryable, errors[0].retry_after) == (True, 3.0)
    assert "slow down" in errors[0].message
    assert errors[1].retryable and errors[1].retry_after is None
    assert not errors[2].retryable and "Incorrect API key provided" in errors[2].message


async def test_a_dead_endpoint_is_a_retryable_error_without_the_key() -> None:
    with LlmStandIn() as llm:
        dead = llm.base_url
    async with session(4) as client:
        with pytest.raises(LlmError) as caught:
            await chat(client, Endpoint(dead, "sk-never-shown"), "m", MESSAGES, SCHEMA, 5)
    assert caught.value.retryable
    assert "cannot be reached" in caught.value.message
    assert "sk-never-shown" not in caught.value.message
