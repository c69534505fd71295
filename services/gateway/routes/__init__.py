"""Every public REST route, listed explicitly."""

from starlette.routing import Route

from services.gateway.routes import (
    annotation_queues,
    comments,
    datasets,
    evaluation_rules,
    evaluators,
    experiments,
    health,
    ingestion,
    integrations,
    llm_connections,
    management,
    media,
    metrics,
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
        *integrations.ROUTES,
        *prompts.ROUTES,
        *ingestion.ROUTES,
        *traces.ROUTES,
        *scores.ROUTES,
        *models.ROUTES,
        *score_configs.ROUTES,
        *experiments.ROUTES,
        *datasets.ROUTES,
        *media.ROUTES,
        *metrics.ROUTES,
        *llm_connections.ROUTES,
        *evaluators.ROUTES,
        *evaluation_rules.ROUTES,
        *comments.ROUTES,
        *annotation_queues.ROUTES,
    ]
