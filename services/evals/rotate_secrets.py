"""`python -m services.evals.rotate_secrets`: re-seals every LLM connection secret with
EVALS_ENCRYPTION_KEY (opening those sealed with EVALS_ENCRYPTION_KEY_PREVIOUS), the middle step of
a key rotation (libs/common/secret_box.py). Safe to run again; prints how many it re-sealed."""

import asyncio

import asyncpg

from services.evals.config import load_evals_config
from services.evals.connections import ConnectionApi
from services.evals.server import secret_box


async def rotate() -> int:
    cfg = load_evals_config()
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=1)
    try:
        return await ConnectionApi(pool, secret_box(cfg)).reseal_all()
    finally:
        await pool.close()


if __name__ == "__main__":
    print(f"re-sealed {asyncio.run(rotate())} LLM connections")
