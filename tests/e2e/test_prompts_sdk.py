"""Prompt management through the official SDKs, unmodified: Python 5.x, Python 3.x (its own
virtualenv) and the JS client."""

import json
import subprocess
import uuid

import pytest
from langfuse import Langfuse

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack, free_port
from tests.e2e.node import run_node_script
from tests.support.devenv import ROOT

SDK3_PYTHON = ROOT / ".dev" / "venvs" / "langfuse3" / "bin" / "python"


def unique_name(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]} prompt"


@pytest.fixture
def sdk(stack: Stack) -> Langfuse:
    return Langfuse(
        public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url, tracing_enabled=False
    )


def test_sdk5_text_prompt_versions_labels_and_compile(sdk: Langfuse) -> None:
    name = unique_name("sdk5")
    first = sdk.create_prompt(
        name=name, prompt="Hello {{who}}", labels=["production"], tags=["e2e"],
        config={"model": "gpt-4o"}, commit_message="first",
    )  # fmt: skip
    assert first.version == 1
    sdk.create_prompt(name=name, prompt="Hi {{who}}, v2")

    default = sdk.get_prompt(name, cache_ttl_seconds=0)
    assert default.version == 1 and default.config == {"model": "gpt-4o"}
    assert default.compile(who="Ada") == "Hello Ada"
    assert sdk.get_prompt(name, label="latest", cache_ttl_seconds=0).version == 2
    assert sdk.get_prompt(name, version=1, cache_ttl_seconds=0).prompt == "Hello {{who}}"

    sdk.update_prompt(name=name, version=2, new_labels=["production"])
    promoted = sdk.get_prompt(name, cache_ttl_seconds=0)
    assert promoted.version == 2 and promoted.tags == ["e2e"]
    assert "production" in promoted.labels and "latest" in promoted.labels


def test_sdk5_chat_prompt_with_placeholders(sdk: Langfuse) -> None:
    name = unique_name("sdk5-chat")
    sdk.create_prompt(
        name=name,
        type="chat",
        prompt=[
            {"role": "system", "content": "You help {{who}}."},
            {"type": "placeholder", "name": "history"},
        ],
        labels=["production"],
    )
    prompt = sdk.get_prompt(name, type="chat", cache_ttl_seconds=0)
    history = [{"role": "user", "content": "hi"}]
    assert prompt.compile(who="Ada", history=history) == [
        {"role": "system", "content": "You help Ada."},
        {"role": "user", "content": "hi"},
    ]


def test_sdk5_falls_back_when_the_server_is_unreachable() -> None:
    offline = Langfuse(
        public_key="pk-lf-offline-case",
        secret_key="sk-lf-offline-case",
        host=f"http://127.0.0.1:{free_port()}",
        tracing_enabled=False,
    )
    prompt = offline.get_prompt("anything", fallback="fallback {{x}}", max_retries=0)
    assert prompt.is_fallback and prompt.compile(x="used") == "fallback used"


def test_sdk5_missing_prompt_is_an_error_without_fallback(sdk: Langfuse) -> None:
    with pytest.raises(Exception) as raised:
        sdk.get_prompt(unique_name("missing"), cache_ttl_seconds=0, max_retries=0)
    assert getattr(raised.value, "status_code", None) == 404


SDK3_SCRIPT = """
import json, sys
from langfuse import Langfuse
public_key, secret_key, host, name = sys.argv[1:5]
client = Langfuse(public_key=public_key, secret_key=secret_key, host=host)
out = {}
client.create_prompt(name=name, prompt="Hello {{who}}", labels=["production"])
client.create_prompt(name=name, prompt="Hi {{who}} v2")
out["default"] = client.get_prompt(name, cache_ttl_seconds=0).version
out["latest"] = client.get_prompt(name, label="latest", cache_ttl_seconds=0).version
out["v1"] = client.get_prompt(name, version=1, cache_ttl_seconds=0).compile(who="Ada")
client.update_prompt(name=name, version=2, new_labels=["production"])
out["promoted"] = client.get_prompt(name, cache_ttl_seconds=0).version
client.create_prompt(name=name + "-chat", type="chat", labels=["production"], prompt=[
    {"role": "system", "content": "You help {{who}}."}, {"type": "placeholder", "name": "h"}])
chat = client.get_prompt(name + "-chat", type="chat", cache_ttl_seconds=0)
out["chat"] = chat.compile(who="Ada", h=[{"role": "user", "content": "hi"}])
print(json.dumps(out))
"""


def test_sdk3_prompts(stack: Stack) -> None:
    name = unique_name("sdk3")
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", SDK3_SCRIPT, PUBLIC_KEY, SECRET_KEY, stack.gateway_url, name],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "default": 1,
        "latest": 2,
        "v1": "Hello Ada",
        "promoted": 2,
        "chat": [
            {"role": "system", "content": "You help Ada."},
            {"role": "user", "content": "hi"},
        ],
    }


def test_js_client_prompts(stack: Stack) -> None:
    name = unique_name("js")
    seen = run_node_script(stack, "prompts.mjs", PROMPT_NAME=name)
    assert seen["createdVersion"] == 1 and seen["fetchedVersion"] == 1
    assert seen["compiled"] == "Hello JS" and seen["config"] == {"temperature": 0.1}
    assert seen["chatCompiled"] == [
        {"role": "system", "content": "You help JS."},
        {"role": "user", "content": "hi"},
    ]
    assert seen["afterDelete"] == 404
