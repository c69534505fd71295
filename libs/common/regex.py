"""Regular expressions users give (model match patterns, JSON Schema `pattern`s) run on RE2:
linear time whatever the input, so a pattern from one project cannot stall a service."""

from typing import Any

import re2


def compile_pattern(pattern: str, case_sensitive: bool = True) -> Any:
    """An RE2 pattern (re2 caches compiled ones; Langfuse's model patterns carry `(?i)` where
    they ignore case); ValueError with RE2's reason for what RE2 cannot compile
    (backreferences, lookarounds, huge repetitions)."""
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        raise ValueError(reason) from exc
