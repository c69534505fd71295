"""The provably fresh cache of score configs (libs/common/gencache.py) as two services share it:
the evals service owns the configs and starts a new generation of a project after every change,
before answering it; the ingestion service files the configs it fetched from evals under the
project's current generation. Both must point at the same Redis."""

import redis.asyncio as redis

from libs.common.gencache import GenerationCache

NAMESPACE = "score_configs"


def score_config_generations(client: redis.Redis) -> GenerationCache:
    return GenerationCache(client, NAMESPACE)
