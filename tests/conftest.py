"""Test tiers: tests/unit (no sockets), tests/integration (real engines), tests/e2e (whole stack).

Integration and e2e tests need the engines of scripts/engines.sh; `make test` starts them. They
never skip: a missing engine is a failure, in CI and locally alike.
"""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
