"""Evaluation rules: `/api/public/v2/evaluation-rules[/{id}]` as the 5.x SDK calls them, and the
same rules in the shape of Langfuse's OpenAPI file under `/api/public/unstable/evaluation-rules
[/{id}]` (evaluators named by name, `target` observation or experiment, v2's trace rules read as
Langfuse's legacy rules; services/evals/unstable.py translates); and our judge-job list,
`GET /api/public/unstable/evaluation-jobs` (`evaluatorId`, `evaluationRuleId`, `traceId`,
`status`, `limit`, `cursor`): each job's status, error, score ids and judge trace, which no SDK
route shows. Errors in the `{message, code}` shape (public_api_errors.py)."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import backend_options, list_response, page_meta, state_of
from services.gateway.routes.evaluators import (
    cursor_list,
    cursor_params,
    deleted,
    json_response,
    unstable_page,
)
from services.gateway.routes.public_api_errors import public_api_endpoint


async def list_rules(request: Request, scope: ProjectScope) -> Response:
    limit, cursor = cursor_params(request)
    reply = await state_of(request).backends.evals.ListEvaluationRules(
        evals_pb2.ListEvaluationRulesRequest(limit=limit, cursor=cursor),
        **backend_options(request, scope),
    )
    return cursor_list(reply.rules_json, reply.next_cursor)


async def create_rule(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateEvaluationRule(
        evals_pb2.CreateEvaluationRuleRequest(body_json=await request.body()),
        **backend_options(request, scope),
    )
    return json_response(reply.rule_json)


async def get_rule(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetEvaluationRule(
        evals_pb2.GetEvaluationRuleRequest(rule_id=request.path_params["rule_id"]),
        **backend_options(request, scope),
    )
    return json_response(reply.rule_json)


async def update_rule(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpdateEvaluationRule(
        evals_pb2.UpdateEvaluationRuleRequest(
            rule_id=request.path_params["rule_id"], body_json=await request.body()
        ),
        **backend_options(request, scope),
    )
    return json_response(reply.rule_json)


async def delete_rule(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.DeleteEvaluationRule(
        evals_pb2.DeleteEvaluationRuleRequest(rule_id=request.path_params["rule_id"]),
        **backend_options(request, scope),
    )
    return json_response(reply.deleted_json)


async def list_jobs(request: Request, scope: ProjectScope) -> Response:
    limit, cursor = cursor_params(request)
    params = request.query_params
    reply = await state_of(request).backends.evals.ListJudgeJobs(
        evals_pb2.ListJudgeJobsRequest(
            limit=limit,
            cursor=cursor,
            evaluator_id=params.get("evaluatorId", ""),
            rule_id=params.get("evaluationRuleId", ""),
            trace_id=params.get("traceId", ""),
            status=params.get("status", ""),
        ),
        **backend_options(request, scope),
    )
    return cursor_list(reply.jobs_json, reply.next_cursor)


async def list_unstable(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.ListEvaluationRules(
        evals_pb2.ListEvaluationRulesRequest(unstable=True, page=unstable_page(request)),
        **backend_options(request, scope),
    )
    return list_response(reply.rules_json, page_meta(reply.meta))


async def create_unstable(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.CreateEvaluationRule(
        evals_pb2.CreateEvaluationRuleRequest(body_json=await request.body(), unstable=True),
        **backend_options(request, scope),
    )
    return json_response(reply.rule_json)


async def get_unstable(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.GetEvaluationRule(
        evals_pb2.GetEvaluationRuleRequest(rule_id=request.path_params["rule_id"], unstable=True),
        **backend_options(request, scope),
    )
    return json_response(reply.rule_json)


async def update_unstable(request: Request, scope: ProjectScope) -> Response:
    reply = await state_of(request).backends.evals.UpdateEvaluationRule(
        evals_pb2.UpdateEvaluationRuleRequest(
            rule_id=request.path_params["rule_id"], body_json=await request.body(), unstable=True
        ),
        **backend_options(request, scope),
    )
    return json_response(reply.rule_json)


async def delete_unstable(request: Request, scope: ProjectScope) -> Response:
    await delete_rule(request, scope)
    return deleted("Evaluation rule successfully deleted")


RULES = "/api/public/v2/evaluation-rules"
UNSTABLE = "/api/public/unstable/evaluation-rules"
ROUTES = [
    Route(RULES, public_api_endpoint(list_rules), methods=["GET"]),
    Route(RULES, public_api_endpoint(create_rule), methods=["POST"]),
    Route(f"{RULES}/{{rule_id}}", public_api_endpoint(get_rule), methods=["GET"]),
    Route(f"{RULES}/{{rule_id}}", public_api_endpoint(update_rule), methods=["PATCH"]),
    Route(f"{RULES}/{{rule_id}}", public_api_endpoint(delete_rule), methods=["DELETE"]),
    Route(UNSTABLE, public_api_endpoint(list_unstable), methods=["GET"]),
    Route(UNSTABLE, public_api_endpoint(create_unstable), methods=["POST"]),
    Route(f"{UNSTABLE}/{{rule_id}}", public_api_endpoint(get_unstable), methods=["GET"]),
    Route(f"{UNSTABLE}/{{rule_id}}", public_api_endpoint(update_unstable), methods=["PATCH"]),
    Route(f"{UNSTABLE}/{{rule_id}}", public_api_endpoint(delete_unstable), methods=["DELETE"]),
    Route("/api/public/unstable/evaluation-jobs", public_api_endpoint(list_jobs), methods=["GET"]),
]
