"""The local stack's configuration (scripts/dev.env), read the way bash sources it."""

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dev_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / "scripts" / "dev.env").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, raw = line.partition("=")
        values[name] = " ".join(shlex.split(raw))
    return values
