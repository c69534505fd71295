import pytest

from libs.common.errors import InvalidArgument
from services.prompts.versions import (
    NewPrompt,
    PromptType,
    fill_variables,
    validate_labels,
    validate_name,
    validate_new,
    variables_in,
)


def chat(*messages: dict[str, str]) -> NewPrompt:
    return NewPrompt("p", PromptType.CHAT, list(messages), {}, (), None, None)


@pytest.mark.parametrize("name", ["", "  ", "a|b", "new", "metrics", "prompt-detail", "<b>x</b>"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_name(name)


def test_folder_names_and_spaces_are_fine() -> None:
    validate_name("folder/sub folder/my prompt")


def test_labels_are_deduplicated_in_order() -> None:
    assert validate_labels(["b", "a", "b"], allow_latest=False) == ("b", "a")


@pytest.mark.parametrize("label", ["Upper", "with space", "x" * 37, "a/b"])
def test_labels_follow_langfuse_charset_and_length(label: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_labels([label], allow_latest=False)


def test_latest_is_managed_by_the_server() -> None:
    with pytest.raises(InvalidArgument, match="latest"):
        validate_labels(["latest"], allow_latest=False)
    assert validate_labels(["latest"], allow_latest=True) == ("latest",)


def test_a_text_prompt_must_be_a_string() -> None:
    with pytest.raises(InvalidArgument):
        validate_new(NewPrompt("p", PromptType.TEXT, [], {}, (), None, None))


def test_a_chat_variable_cannot_share_a_placeholder_name() -> None:
    with pytest.raises(InvalidArgument, match="history"):
        validate_new(
            chat(
                {"role": "system", "content": "Use {{history}}"},
                {"type": "placeholder", "name": "history"},
            )
        )
    validate_new(
        chat({"role": "system", "content": "Hi {{name}}"}, {"type": "placeholder", "name": "h"})
    )


def test_commit_messages_are_limited_to_500_characters() -> None:
    with pytest.raises(InvalidArgument):
        validate_new(NewPrompt("p", PromptType.TEXT, "x", {}, (), None, "m" * 501))


def test_variables_follow_mustache_names() -> None:
    assert variables_in("{{a}} {{ b_1 }} {{1x}} {{ä}}") == {"a", "b_1", "ä"}
    assert fill_variables("Hi {{name}}, {{missing}}", {"name": "Ada"}) == "Hi Ada, {{missing}}"
