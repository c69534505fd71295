"""LLM connections (`GET/PUT /llm-connections`, `DELETE /llm-connections/{id}`): upserted by
provider name, their secret key and extra headers sealed at rest (libs/common/secret_box.py),
shown only masked. The judge worker opens them (`endpoint`) and nothing else does."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from libs.common.errors import NotFound, Unavailable
from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.json_bodies import parse_body
from libs.common.secret_box import SecretBox, masked
from services.evals.fields import (
    findable,
    indexable,
    invalid,
    iso,
    json_text,
    optional_text,
    page_meta,
    stored_json,
    text,
)
from services.evals.llm import Endpoint

# Langfuse's LlmAdapter values; only the OpenAI wire format is spoken here (any compatible
# baseURL), so the others are refused rather than stored and failing every job later.
ADAPTERS = ("anthropic", "openai", "azure", "bedrock", "google-vertex-ai", "google-ai-studio")
SUPPORTED_ADAPTERS = ("openai",)
# withDefaultModels: the models an OpenAI connection offers besides its customModels.
OPENAI_DEFAULT_MODELS = (
    "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "gpt-4",
    "gpt-3.5-turbo", "o1", "o1-mini", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini",
    "gpt-5-nano",
)  # fmt: skip
NO_KEY = "LLM connections are disabled: EVALS_ENCRYPTION_KEY is not set on the evals service"


@dataclass(frozen=True, slots=True)
class Connection:
    id: str
    provider: str
    models: frozenset[str]
    endpoint: Endpoint


class ConnectionApi:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox | None) -> None:
        self._pool = pool
        self._box = box

    async def upsert(self, project_id: str, raw: bytes) -> bytes:
        body = parse_body(raw)
        box = self._require_box()
        provider = indexable(text(body.get("provider"), "provider"), "provider")
        adapter = body.get("adapter")
        if adapter not in ADAPTERS:
            raise invalid(f"adapter must be one of {', '.join(ADAPTERS)}")
        if adapter not in SUPPORTED_ADAPTERS:
            raise invalid(f"adapter {adapter} is not supported yet: use openai (any "
                          "OpenAI-compatible baseURL)")  # fmt: skip
        secret = text(body.get("secretKey"), "secretKey", max_length=10_000)
        base_url = optional_text(body.get("baseURL"), "baseURL", max_length=2000)
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise invalid("baseURL must be an http(s) URL")
        models = _strings(body.get("customModels"), "customModels")
        with_defaults = body.get("withDefaultModels", True)
        if with_defaults is None:
            with_defaults = True
        if not isinstance(with_defaults, bool):
            raise invalid("withDefaultModels must be a boolean")
        headers = body.get("extraHeaders") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in headers.items()
        ):
            raise invalid("extraHeaders must be an object of strings")
        config = body.get("config")
        if config is not None and (
            not isinstance(config, dict)
            or set(config) - {"useResponsesApi"}
            or not isinstance(config.get("useResponsesApi", False), bool)
        ):
            raise invalid('config of an openai connection must be {"useResponsesApi": <boolean>}')
        context = f"{project_id}/{provider}"
        now = datetime.now(UTC)
        row = await self._pool.fetchrow(
            _UPSERT, project_id, str(uuid.uuid4()), provider, adapter, box.seal(secret, context),
            masked(secret), base_url, models, with_defaults,
            box.seal(orjson.dumps(headers).decode(), context) if headers else None,
            sorted(headers), json_text(config), now,
        )  # fmt: skip
        return _document(row)

    async def list_page(
        self, project_id: str, page: int, limit: int
    ) -> tuple[list[bytes], common_pb2.PageMeta]:
        rows = await self._pool.fetch(_LIST, project_id, limit, (page - 1) * limit)
        total = await self._pool.fetchval(_COUNT, project_id)
        return [_document(r) for r in rows], page_meta(page, limit, total)

    async def delete(self, project_id: str, connection_id: str) -> None:
        if (
            not findable(connection_id)
            or await self._pool.fetchval(_DELETE, project_id, connection_id) is None
        ):
            raise NotFound(f"LLM connection {connection_id} not found")

    async def exists(self, project_id: str, provider: str) -> list[str] | None:
        """The models a connection offers ([] = any), or None when it does not exist."""
        row = await self._pool.fetchrow(_MODELS, project_id, provider)
        if row is None:
            return None
        defaults = list(OPENAI_DEFAULT_MODELS) if row["with_default_models"] else []
        return [*row["custom_models"], *defaults]

    async def connection(self, project_id: str, provider: str) -> Connection | None:
        """The connection with its secrets opened, for the judge."""
        box = self._require_box()
        row = await self._pool.fetchrow(_SECRETS, project_id, provider)
        if row is None:
            return None
        context = f"{project_id}/{provider}"
        headers = (
            orjson.loads(box.open(row["extra_headers"], context)) if row["extra_headers"] else {}
        )
        defaults = OPENAI_DEFAULT_MODELS if row["with_default_models"] else ()
        return Connection(
            id=row["id"],
            provider=provider,
            models=frozenset((*row["custom_models"], *defaults)),
            endpoint=Endpoint(row["base_url"], box.open(row["secret_key"], context), headers),
        )

    async def reseal_all(self) -> int:
        """Re-seals every secret with the current key (key rotation); the count re-sealed."""
        box = self._require_box()
        count = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch("SELECT * FROM llm_connections FOR UPDATE"):
                if box.is_current(row["secret_key"]) and (
                    row["extra_headers"] is None or box.is_current(row["extra_headers"])
                ):
                    continue
                context = f"{row['project_id']}/{row['provider']}"
                headers = row["extra_headers"]
                await conn.execute(
                    "UPDATE llm_connections SET secret_key = $3, extra_headers = $4"
                    " WHERE project_id = $1 AND id = $2",
                    row["project_id"], row["id"],
                    box.seal(box.open(row["secret_key"], context), context),
                    None if headers is None else box.seal(box.open(headers, context), context),
                )  # fmt: skip
                count += 1
        return count

    def _require_box(self) -> SecretBox:
        if self._box is None:
            raise Unavailable(NO_KEY)
        return self._box


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise invalid(f"{field} must be a list of non-empty strings")
    return [text(v, field) for v in value]


def _document(row: asyncpg.Record) -> bytes:
    return orjson.dumps(
        {
            "id": row["id"],
            "provider": row["provider"],
            "adapter": row["adapter"],
            "displaySecretKey": row["display_secret_key"],
            "baseURL": row["base_url"],
            "customModels": list(row["custom_models"]),
            "withDefaultModels": row["with_default_models"],
            "extraHeaderKeys": list(row["extra_header_keys"]),
            "config": stored_json(row["config"]),
            "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"]),
        }
    )


_PUBLIC = """id, provider, adapter, display_secret_key, base_url, custom_models,
    with_default_models, extra_header_keys, config::text AS config, created_at, updated_at"""
_UPSERT = f"""
INSERT INTO llm_connections AS c (project_id, id, provider, adapter, secret_key,
    display_secret_key, base_url, custom_models, with_default_models, extra_headers,
    extra_header_keys, config, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::text::jsonb, $13, $13)
ON CONFLICT (project_id, provider) DO UPDATE SET
    adapter = EXCLUDED.adapter, secret_key = EXCLUDED.secret_key,
    display_secret_key = EXCLUDED.display_secret_key, base_url = EXCLUDED.base_url,
    custom_models = EXCLUDED.custom_models, with_default_models = EXCLUDED.with_default_models,
    extra_headers = EXCLUDED.extra_headers, extra_header_keys = EXCLUDED.extra_header_keys,
    config = EXCLUDED.config, updated_at = EXCLUDED.updated_at
RETURNING {_PUBLIC}
"""
_LIST = f"""SELECT {_PUBLIC} FROM llm_connections WHERE project_id = $1
ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"""
_COUNT = "SELECT count(*) FROM llm_connections WHERE project_id = $1"
_DELETE = "DELETE FROM llm_connections WHERE project_id = $1 AND id = $2 RETURNING id"
_MODELS = """SELECT custom_models, with_default_models FROM llm_connections
WHERE project_id = $1 AND provider = $2"""
_SECRETS = """SELECT id, base_url, custom_models, with_default_models, secret_key, extra_headers
FROM llm_connections WHERE project_id = $1 AND provider = $2"""
