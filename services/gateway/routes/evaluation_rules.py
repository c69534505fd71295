"""Evaluation rules: `/api/public/v2/evaluation-rules[/{id}]` as the 5.x SDK calls them (the
`/unstable/` shape of Langfuse's OpenAPI file is not served); and our judge-job list,
`GET /api/public/unstable/evaluation-jobs` (`evaluatorId`, `evaluationRuleId`, `traceId`,
`status`, `limit`, `cursor`): each job's status, error, score ids and judge trace, which no SDK
route shows. Errors in the `{message, code}` shape (public_api_errors.py)."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.scope import ProjectScope
from services.gateway.endpoint import backend_options, state_of
from services.gateway.routes.evaluators import cursor_list, cursor_params, json_response
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


RULES = "/api/public/v2/evaluation-rules"
ROUTES = [
    Route(RULES, public_api_endpoint(list_rules), methods=["GET"]),
    Route(RULES, public_api_endpoint(create_rule), methods=["POST"]),
    Route(f"{RULES}/{{rule_id}}", public_api_endpoint(get_rule), methods=["GET"]),
    Route(f"{RULES}/{{rule_id}}", public_api_endpoint(update_rule), methods=["PATCH"]),
    Route(f"{RULES}/{{rule_id}}", public_api_endpoint(delete_rule), methods=["DELETE"]),
    Route("/api/public/unstable/evaluation-jobs", public_api_endpoint(list_jobs), methods=["GET"]),
]
