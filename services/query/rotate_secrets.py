"""`python -m services.query.rotate_secrets`: re-seals every blob-storage export secret with
QUERY_ENCRYPTION_KEY (opening those sealed with QUERY_ENCRYPTION_KEY_PREVIOUS), the middle step of
a key rotation (libs/common/secret_box.py). Safe to run again; prints how many it re-sealed."""

import asyncio

import asyncpg

from libs.common.secret_box import open_box
from services.query.config import load_query_config
from services.query.export_store import ExportStore


async def rotate() -> int:
    cfg = load_query_config()
    box = open_box(cfg.encryption_key, cfg.encryption_key_previous)
    if box is None:
        raise SystemExit("QUERY_ENCRYPTION_KEY is not set: there is no key to re-seal with")
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=1)
    try:
        return await ExportStore(pool).reseal_all(box)
    finally:
        await pool.close()


if __name__ == "__main__":
    print(f"re-sealed {asyncio.run(rotate())} blob-storage export secrets")
