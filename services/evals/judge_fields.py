"""What evaluators and evaluation rules share: opaque list cursors, variable mappings
(`{variable, source, jsonPath}`) and the template's `{{variables}}`. Every check raises
InvalidArgument naming the field."""

import base64
import re
from typing import Any

import asyncpg
import orjson

from services.evals.fields import invalid, optional_text, text

# PromptVariableMappingSource of the 5.x SDK.
SOURCES = ("input", "output", "metadata", "tool_calls", "expected_output",
           "experiment_item_metadata")  # fmt: skip
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.\-]*)\s*\}\}")
MAX_LIMIT = 100


def template_variables(messages: list[dict[str, str]]) -> list[str]:
    """The `{{variables}}` of a chat prompt, in first-use order."""
    seen: dict[str, None] = {}
    for message in messages:
        for name in VARIABLE.findall(message["content"]):
            seen.setdefault(name)
    return list(seen)


def variable_mapping(value: Any, field: str, variables: list[str]) -> list[dict[str, Any]] | None:
    """A list of `{variable, source, jsonPath?}` naming only the template's variables, each once."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid(f"{field} must be a list")
    mapping, seen = [], set()
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object")
        variable = text(item.get("variable"), f"{where}.variable")
        if variable not in variables:
            raise invalid(f"{where}.variable: {variable!r} is not a variable of the prompt")
        if variable in seen:
            raise invalid(f"{where}.variable: {variable!r} is mapped twice")
        seen.add(variable)
        source = item.get("source")
        if source not in SOURCES:
            raise invalid(f"{where}.source must be one of {', '.join(SOURCES)}")
        json_path = optional_text(item.get("jsonPath"), f"{where}.jsonPath")
        if json_path:
            try:
                path_steps(json_path)
            except ValueError as exc:
                raise invalid(f"{where}.jsonPath: {exc}") from exc
        mapping.append({"variable": variable, "source": source, "jsonPath": json_path or None})
    return mapping


_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def path_steps(path: str) -> list[str | int]:
    """`$.a.b[0]` or `a.b[0]` as keys and indexes; a JSONPath beyond that subset is refused."""
    rest = path.strip()
    rest = rest[1:] if rest.startswith("$") else rest
    if rest and not rest.startswith((".", "[")):
        rest = "." + rest
    steps: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _STEP.match(rest, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} (use $.key, .key, [index])")
        key, index, quoted = match.groups()
        steps.append(int(index) if index is not None else key or quoted)
        position = match.end()
    return steps


def at_path(value: Any, path: str | None) -> Any:
    """The value at `path`, or None when it is not there. JSON text is read as JSON first."""
    if not path:
        return value
    for step in path_steps(path):
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return None
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def list_window(limit: int, cursor: str) -> tuple[int, int]:
    """(limit, offset) of a cursor list; the cursor is the next offset, opaque to clients."""
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIMIT}")
    if not cursor:
        return limit, 0
    try:
        offset = int(orjson.loads(base64.urlsafe_b64decode(cursor + "=="))["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid("cursor is not one this API returned") from exc
    if offset < 0:
        raise invalid("cursor is not one this API returned")
    return limit, offset


def next_cursor(limit: int, offset: int, fetched: int) -> str:
    """The cursor after a page fetched with limit + 1 rows; '' on the last page."""
    if fetched <= limit:
        return ""
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset + limit})).decode().rstrip("=")


async def cursor_page(
    db: asyncpg.Pool | asyncpg.Connection, sql: str, limit: int, cursor: str, *params: Any
) -> tuple[list[asyncpg.Record], str]:
    """A page of a cursor list and the next cursor; `sql` takes `params`, then LIMIT and OFFSET
    (one row more than the page is read, to tell whether another page follows)."""
    limit, offset = list_window(limit, cursor)
    rows = await db.fetch(sql, *params, limit + 1, offset)
    return rows[:limit], next_cursor(limit, offset, len(rows))


async def numbered_page(
    pool: asyncpg.Pool, sql: str, count_sql: str, project_id: str, page: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    """A page of a page-numbered list (the `/unstable/` shape's) and how many rows the project
    has; `sql` takes the project, LIMIT and OFFSET, `count_sql` the project."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(sql, project_id, limit, (page - 1) * limit)
        total = await conn.fetchval(count_sql, project_id)
    return rows, total
