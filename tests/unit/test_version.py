import tomllib

from libs.common import VERSION
from tests.support.devenv import ROOT


def test_reported_version_matches_the_distribution() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION
