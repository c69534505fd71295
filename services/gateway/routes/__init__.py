"""Every public REST route, listed explicitly."""

from starlette.routing import Route

from services.gateway.routes import (
    annotation_queues,
    comments,
    datasets,
    experiments,
    health,
    ingestion,
    management,
    media,
    models,
    projects,
    prompts,
    score_configs,
    scores,
    traces,
)


def all_routes() -> list[Route]:
    return [
        *health.ROUTES,
        *projects.ROUTES,
        *management.ROUTES,
        *prompts.ROUTES,
        *ingestion.ROUTES,
        *traces.ROUTES,
        *scores.ROUTES,
        *models.ROUTES,
        *score_configs.ROUTES,
        *experiments.ROUTES,
        *datasets.ROUTES,
        *media.ROUTES,
        *comments.ROUTES,
        *annotation_queues.ROUTES,
    ]
