"""Generations without usage are counted with the model's offline OpenAI tokenizer."""

from services.query.tokens import count_usage

GPT_4O = {"tokenizerModel": "gpt-4o", "tokensPerMessage": 3, "tokensPerName": 1}


def test_text_is_counted_with_the_models_encoding() -> None:
    # "Hello world" is [13225, 2375] in o200k_base (gpt-4o) and [9906, 1917] in cl100k_base.
    assert count_usage("openai", GPT_4O, "Hello world", None) == {"input": 2, "total": 2}
    gpt4 = {"tokenizerModel": "gpt-4-0613"}
    assert count_usage("openai", gpt4, "Hello world", "Hello") == {
        "input": 2, "output": 1, "total": 3,
    }  # fmt: skip


def test_chat_messages_add_per_message_and_per_name_tokens_and_the_reply_priming() -> None:
    messages = [{"role": "user", "content": "Hello world"}]
    named = [{"role": "user", "name": "bob", "content": "Hello world"}]
    plain = count_usage("openai", GPT_4O, messages, None)["input"]
    # 3 per message + "user" (1) + "Hello world" (2) + 3 priming the reply.
    assert plain == 3 + 1 + 2 + 3
    assert count_usage("openai", GPT_4O, named, None)["input"] == plain + 1 + 1  # "bob" + name


def test_special_token_text_counts_as_text() -> None:
    assert count_usage("openai", GPT_4O, "<|endoftext|>", None)["input"] > 1


def test_nothing_is_counted_without_an_openai_tokenizer_or_anything_to_count() -> None:
    assert count_usage("claude", {"tokenizerModel": "claude"}, "Hello", None) == {}
    assert count_usage(None, {}, "Hello", None) == {}
    assert count_usage("openai", {"tokenizerModel": "davinci-unknown"}, "Hello", None) == {}
    assert count_usage("openai", GPT_4O, None, "") == {}
