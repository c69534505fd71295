"""The dataset run id Langfuse derives from a run's name, spelled out here apart from
services/evals/runs.py so the tests check that one rather than reuse it."""

import hashlib
import json

from tests.e2e.conftest import PROJECT_ID


def stable_run_id(dataset_id: str, run_name: str) -> str:
    """The id of run RUN_NAME of dataset DATASET_ID in the stack's project."""
    key = json.dumps(
        ["langfuse-experiment-v1", PROJECT_ID, dataset_id, run_name],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]
