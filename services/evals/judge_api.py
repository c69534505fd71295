"""The LLM-as-a-judge RPCs: LLM connections, evaluators, evaluation rules and judge jobs, each
delegated to its module (evaluators and rules asked for in the `/unstable/` shape to
services/evals/unstable.py, which translates to and from the v2 one). A change to evaluators or
rules reloads this replica's rule cache at once (other replicas within services/evals/trigger.py's
reload interval)."""

from libs.common.errors import NotFound
from libs.common.gen.obs.evals.v1 import evals_pb2 as pb
from libs.common.scope import ProjectScope
from services.evals.connections import ConnectionApi
from services.evals.evaluators import EvaluatorApi
from services.evals.fields import checked_page, findable, invalid, page_meta
from services.evals.jobs import STATUSES, JobStore
from services.evals.rules import RuleApi
from services.evals.trigger import RuleCache
from services.evals.unstable import UnstableApi

DEFAULT_LIMIT = 50


class JudgeApi:
    def __init__(self, connections: ConnectionApi, evaluators: EvaluatorApi, rules: RuleApi,
                 jobs: JobStore, cache: RuleCache) -> None:  # fmt: skip
        self._connections = connections
        self._evaluators = evaluators
        self._rules = rules
        self._jobs = jobs
        self._cache = cache
        self._unstable = UnstableApi(evaluators, rules)

    async def upsert_connection(
        self, scope: ProjectScope, request: pb.UpsertLlmConnectionRequest
    ) -> pb.UpsertLlmConnectionResponse:
        document = await self._connections.upsert(scope.project_id, request.body_json)
        return pb.UpsertLlmConnectionResponse(connection_json=document)

    async def list_connections(
        self, scope: ProjectScope, request: pb.ListLlmConnectionsRequest
    ) -> pb.ListLlmConnectionsResponse:
        page, limit = checked_page(request.page)
        documents, meta = await self._connections.list_page(scope.project_id, page, limit)
        return pb.ListLlmConnectionsResponse(connections_json=documents, meta=meta)

    async def delete_connection(
        self, scope: ProjectScope, request: pb.DeleteLlmConnectionRequest
    ) -> pb.DeleteLlmConnectionResponse:
        await self._connections.delete(scope.project_id, request.connection_id)
        return pb.DeleteLlmConnectionResponse()

    async def create_evaluator(
        self, scope: ProjectScope, request: pb.CreateEvaluatorRequest
    ) -> pb.CreateEvaluatorResponse:
        if not request.unstable:
            document = await self._evaluators.create(scope.project_id, request.body_json)
            return pb.CreateEvaluatorResponse(evaluator_json=document)
        # An unstable creation may be a new version of an evaluator rules use.
        document = await self._unstable.create_evaluator(scope.project_id, request.body_json)
        await self._cache.reload()
        return pb.CreateEvaluatorResponse(evaluator_json=document)

    async def get_evaluator(
        self, scope: ProjectScope, request: pb.GetEvaluatorRequest
    ) -> pb.GetEvaluatorResponse:
        _require_findable(request.evaluator_id, "Evaluator")
        shape = self._unstable.get_evaluator if request.unstable else self._evaluators.get
        document = await shape(scope.project_id, request.evaluator_id)
        return pb.GetEvaluatorResponse(evaluator_json=document)

    async def list_evaluators(
        self, scope: ProjectScope, request: pb.ListEvaluatorsRequest
    ) -> pb.ListEvaluatorsResponse:
        if request.unstable:
            page, limit = checked_page(request.page)
            documents, total = await self._unstable.list_evaluators(scope.project_id, page, limit)
            return pb.ListEvaluatorsResponse(
                evaluators_json=documents, meta=page_meta(page, limit, total)
            )
        documents, cursor = await self._evaluators.list_page(
            scope.project_id, request.limit or DEFAULT_LIMIT, request.cursor
        )
        return pb.ListEvaluatorsResponse(evaluators_json=documents, next_cursor=cursor)

    async def update_evaluator(
        self, scope: ProjectScope, request: pb.UpdateEvaluatorRequest
    ) -> pb.UpdateEvaluatorResponse:
        _require_findable(request.evaluator_id, "Evaluator")
        document = await self._evaluators.update(
            scope.project_id, request.evaluator_id, request.body_json
        )
        await self._cache.reload()
        return pb.UpdateEvaluatorResponse(evaluator_json=document)

    async def delete_evaluator(
        self, scope: ProjectScope, request: pb.DeleteEvaluatorRequest
    ) -> pb.DeleteEvaluatorResponse:
        _require_findable(request.evaluator_id, "Evaluator")
        document = await self._evaluators.delete(scope.project_id, request.evaluator_id)
        await self._cache.reload()
        return pb.DeleteEvaluatorResponse(deleted_json=document)

    async def list_evaluator_versions(
        self, scope: ProjectScope, request: pb.ListEvaluatorVersionsRequest
    ) -> pb.ListEvaluatorVersionsResponse:
        _require_findable(request.evaluator_id, "Evaluator")
        documents, cursor = await self._evaluators.versions(
            scope.project_id, request.evaluator_id, request.limit or DEFAULT_LIMIT, request.cursor
        )
        return pb.ListEvaluatorVersionsResponse(versions_json=documents, next_cursor=cursor)

    async def create_rule(
        self, scope: ProjectScope, request: pb.CreateEvaluationRuleRequest
    ) -> pb.CreateEvaluationRuleResponse:
        shape = self._unstable.create_rule if request.unstable else self._rules.create
        document = await shape(scope.project_id, request.body_json)
        await self._cache.reload()
        return pb.CreateEvaluationRuleResponse(rule_json=document)

    async def get_rule(
        self, scope: ProjectScope, request: pb.GetEvaluationRuleRequest
    ) -> pb.GetEvaluationRuleResponse:
        _require_findable(request.rule_id, "Evaluation rule")
        shape = self._unstable.get_rule if request.unstable else self._rules.get
        document = await shape(scope.project_id, request.rule_id)
        return pb.GetEvaluationRuleResponse(rule_json=document)

    async def list_rules(
        self, scope: ProjectScope, request: pb.ListEvaluationRulesRequest
    ) -> pb.ListEvaluationRulesResponse:
        if request.unstable:
            page, limit = checked_page(request.page)
            documents, total = await self._unstable.list_rules(scope.project_id, page, limit)
            return pb.ListEvaluationRulesResponse(
                rules_json=documents, meta=page_meta(page, limit, total)
            )
        documents, cursor = await self._rules.list_page(
            scope.project_id, request.limit or DEFAULT_LIMIT, request.cursor
        )
        return pb.ListEvaluationRulesResponse(rules_json=documents, next_cursor=cursor)

    async def update_rule(
        self, scope: ProjectScope, request: pb.UpdateEvaluationRuleRequest
    ) -> pb.UpdateEvaluationRuleResponse:
        _require_findable(request.rule_id, "Evaluation rule")
        shape = self._unstable.update_rule if request.unstable else self._rules.update
        document = await shape(scope.project_id, request.rule_id, request.body_json)
        await self._cache.reload()
        return pb.UpdateEvaluationRuleResponse(rule_json=document)

    async def delete_rule(
        self, scope: ProjectScope, request: pb.DeleteEvaluationRuleRequest
    ) -> pb.DeleteEvaluationRuleResponse:
        _require_findable(request.rule_id, "Evaluation rule")
        document = await self._rules.delete(scope.project_id, request.rule_id)
        await self._cache.reload()
        return pb.DeleteEvaluationRuleResponse(deleted_json=document)

    async def list_jobs(
        self, scope: ProjectScope, request: pb.ListJudgeJobsRequest
    ) -> pb.ListJudgeJobsResponse:
        if not all(map(findable, (request.evaluator_id, request.rule_id, request.trace_id))):
            raise invalid("filters must not contain NUL characters")
        if request.status and request.status not in STATUSES:
            raise invalid(f"status must be one of {', '.join(STATUSES)}")
        filters = {"evaluator_id": request.evaluator_id, "rule_id": request.rule_id,
                   "trace_id": request.trace_id, "status": request.status}  # fmt: skip
        documents, cursor = await self._jobs.list_page(
            scope.project_id, request.limit or DEFAULT_LIMIT, request.cursor, filters
        )
        return pb.ListJudgeJobsResponse(jobs_json=documents, next_cursor=cursor)


def _require_findable(entity_id: str, kind: str) -> None:
    """An id PostgreSQL text cannot hold (NUL) names nothing: a 404, not a store error."""
    if not findable(entity_id):
        raise NotFound(f"{kind} not found")
