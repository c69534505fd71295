"""The run id is the stable experiment id the SDKs compute: the expected values below come from
JavaScript (`sha256(JSON.stringify(["langfuse-experiment-v1", project, dataset, run]))`, first 16
hex characters), including a name with non-ASCII characters, quotes, a backslash and a newline."""

import pytest

from services.evals.runs import run_id


@pytest.mark.parametrize(
    ("run_name", "expected"),
    [
        ("run 1", "55b97aa3ed704f12"),
        ('Läuf été / 実験 "q" \\ \n', "f083111073a75c73"),
    ],
)
def test_the_run_id_is_what_javascript_computes(run_name: str, expected: str) -> None:
    assert run_id("proj-1", "ds-1", run_name) == expected
