from services.prompts.compiler import compile_chat, compile_text


def test_text_variables_are_filled() -> None:
    assert compile_text("Hi {{name}}!", {"name": "Ada"}) == "Hi Ada!"


def test_chat_placeholders_are_spliced_and_variables_filled() -> None:
    messages = [
        {"role": "system", "content": "You help {{user}}."},
        {"type": "placeholder", "name": "history"},
        {"type": "placeholder", "name": "unfilled"},
    ]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert compile_chat(messages, {"user": "Ada"}, {"history": history}) == [
        {"role": "system", "content": "You help Ada."},
        *history,
        {"type": "placeholder", "name": "unfilled"},
    ]
