"""scripts/dev_env.sh, which `make dev` (scripts/stack.sh) loads: Langfuse's headless-init
variables given by the caller win over scripts/dev.env; everything else comes from the file."""

import os
import subprocess

from tests.support.devenv import ROOT, dev_env

SHOW = (
    'source scripts/dev_env.sh; load_dev_env; printf "%s\\n" "$LANGFUSE_INIT_PROJECT_PUBLIC_KEY"'
    ' "$LANGFUSE_INIT_PROJECT_NAME" "$LANGFUSE_INIT_ORG_ID" "$GATEWAY_HTTP_PORT"'
)


def loaded(**given: str) -> list[str]:
    caller = {k: v for k, v in os.environ.items() if not k.startswith("LANGFUSE_INIT_")}
    result = subprocess.run(
        ["bash", "-c", SHOW],
        cwd=ROOT,
        env={**caller, **given},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("\n")[:4]


def test_without_overrides_the_file_gives_the_defaults() -> None:
    defaults = dev_env()
    assert loaded() == [
        defaults["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"],
        defaults["LANGFUSE_INIT_PROJECT_NAME"],
        defaults["LANGFUSE_INIT_ORG_ID"],
        defaults["GATEWAY_HTTP_PORT"],
    ]


def test_headless_init_variables_of_the_caller_win_and_the_rest_keep_the_defaults() -> None:
    defaults = dev_env()
    assert loaded(
        LANGFUSE_INIT_PROJECT_PUBLIC_KEY="pk-lf-mine",
        LANGFUSE_INIT_PROJECT_NAME="My 'quoted' $project \"name\"",
        GATEWAY_HTTP_PORT="1",
    ) == [
        "pk-lf-mine",
        "My 'quoted' $project \"name\"",
        defaults["LANGFUSE_INIT_ORG_ID"],
        defaults["GATEWAY_HTTP_PORT"],  # not an init variable: the file's value
    ]


def test_stack_and_engines_scripts_load_the_environment_through_it() -> None:
    for script in ("stack.sh", "engines.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert "source scripts/dev_env.sh; load_dev_env" in text
        assert "source scripts/dev.env" not in text
