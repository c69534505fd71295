"""Token counts for generations that arrive without usage, as Langfuse computes them for models
whose tokenizer is `openai`: the BPE of the model's `tokenizerModel`, and chat inputs counted per
message with `tokensPerMessage` and `tokensPerName`, plus 3 tokens that prime the reply.

The BPE tables come from bpe-openai, which ships them inside its wheel (tiktoken downloads them
on first use, which a machine without internet access cannot do). Models with the `claude`
tokenizer are not counted: no Anthropic tokenizer for Python works offline. Pure: no I/O."""

import functools
from typing import Any

import bpe_openai
import orjson

# Most specific prefixes first, as tiktoken maps model names to encodings.
_ENCODING_PREFIXES = (
    ("gpt-4o", "o200k_base"), ("chatgpt-4o", "o200k_base"), ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"), ("gpt-5", "o200k_base"), ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"), ("o3", "o200k_base"), ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5", "cl100k_base"), ("gpt-35", "cl100k_base"),
    ("text-embedding-", "cl100k_base"),
)  # fmt: skip
_REPLY_PRIMING = 3


def count_usage(
    tokenizer_id: str | None, config: dict[str, Any], input_value: Any, output_value: Any
) -> dict[str, int]:
    """{input, output, total} for what could be counted; {} when the model has no usable
    tokenizer or there is nothing to count."""
    if tokenizer_id != "openai":
        return {}
    encoding = _encoding(str(config.get("tokenizerModel") or ""))
    if encoding is None:
        return {}
    usage = {}
    for key, value in (("input", input_value), ("output", output_value)):
        count = _count(encoding, config, value)
        if count is not None:
            usage[key] = count
    if usage:
        usage["total"] = sum(usage.values())
    return usage


def _count(encoding: bpe_openai.Encoding, config: dict[str, Any], value: Any) -> int | None:
    if value is None or value == "" or value == []:
        return None
    if _is_chat(value):
        per_message = _setting(config, "tokensPerMessage")
        per_name = _setting(config, "tokensPerName")
        total = _REPLY_PRIMING
        for message in value:
            total += per_message
            for key, part in message.items():
                total += _text_tokens(encoding, part)
                if key == "name":
                    total += per_name
        return total
    return _text_tokens(encoding, value)


def _setting(config: dict[str, Any], key: str) -> int:
    """The models API accepts only integers here; models stored before it checked may hold
    anything, which counts as 0 rather than failing the writer."""
    value = config.get(key)
    return value if type(value) is int else 0


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in value
    )


def _text_tokens(encoding: bpe_openai.Encoding, value: Any) -> int:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    # User text may contain "<|endoftext|>": counted as text, as the provider would.
    return len(encoding.encode(text, disallowed_special=()))


@functools.lru_cache(maxsize=64)
def _encoding(model: str) -> bpe_openai.Encoding | None:
    for prefix, name in _ENCODING_PREFIXES:
        if model.startswith(prefix):
            return bpe_openai.get_encoding(name)
    return None
