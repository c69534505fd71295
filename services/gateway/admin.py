"""Operator commands for organizations, projects and keys:

    python -m services.gateway.admin create-project --org-id ORG --project-id ID --name NAME
    python -m services.gateway.admin create-key --org-id ORG [--project-id ID]

`create-key` without a project creates an organization-scoped key (and the organization, if it
is new), which manages projects and their keys through the management API
(services/gateway/routes/management.py). The secret is printed once.
"""

import argparse
import asyncio
import sys

import asyncpg
import orjson

from libs.common.config import ConfigError
from services.gateway.config import GatewayConfig, load_gateway_config
from services.gateway.keys import display_secret, hash_secret, new_key_pair
from services.gateway.store import KeyScope, ProjectStore


async def create_project(store: ProjectStore, args: argparse.Namespace) -> dict[str, str]:
    if args.org_name:
        await store.upsert_organization(args.org_id, args.org_name)
    else:
        await store.add_organization_if_missing(args.org_id, args.org_id)
    await store.upsert_project(args.project_id, args.org_id, args.name)
    return {"orgId": args.org_id, "projectId": args.project_id, "name": args.name}


async def create_key(
    store: ProjectStore, args: argparse.Namespace, salt: str
) -> dict[str, str | None]:
    pair = new_key_pair()
    scope = KeyScope.PROJECT if args.project_id else KeyScope.ORGANIZATION
    # An organization key is how a new organization starts: its projects come through the API.
    await store.add_organization_if_missing(args.org_id, args.org_id)
    await store.put_key(
        public_key=pair.public_key,
        secret_hash=hash_secret(pair.secret_key, salt),
        display_secret_key=display_secret(pair.secret_key),
        scope=scope,
        org_id=args.org_id,
        project_id=args.project_id,
        note=args.note,
    )
    return {
        "publicKey": pair.public_key,
        "secretKey": pair.secret_key,
        "scope": scope.value,
        "projectId": args.project_id,
    }


async def main(cfg: GatewayConfig, args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=2)
    try:
        store = ProjectStore(pool)
        if args.command == "create-project":
            result: dict[str, str | None] = {**await create_project(store, args)}
        else:
            result = await create_key(store, args, cfg.api_key_salt)
    finally:
        await pool.close()
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.gateway.admin")
    commands = parser.add_subparsers(dest="command", required=True)
    project = commands.add_parser("create-project", help="create or rename a project")
    project.add_argument("--org-id", required=True)
    project.add_argument("--org-name", default="")
    project.add_argument("--project-id", required=True)
    project.add_argument("--name", required=True)
    key = commands.add_parser("create-key", help="create an API key pair")
    key.add_argument("--org-id", required=True)
    key.add_argument("--project-id", default=None)
    key.add_argument("--note", default="")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    try:
        config = load_gateway_config()
    except ConfigError as exc:
        sys.exit(f"admin: {exc}")
    asyncio.run(main(config, arguments))
