"""Reading a request body that must be one JSON object, as every service's write API does: a 400
in Langfuse's words for anything else."""

from typing import Any

import orjson

from libs.common.errors import InvalidArgument


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
        # orjson writes at most 254 levels of nesting (and reads 1024): refused here, not when
        # a value is written to the store.
        orjson.dumps(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument("Invalid request data: the body is not valid JSON") from exc
    except orjson.JSONEncodeError as exc:
        raise InvalidArgument("Invalid request data: the body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise InvalidArgument("Invalid request data: expected a JSON object")
    return body
