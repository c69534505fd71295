import asyncpg
import grpc
import orjson

from libs.common.gen.obs.evals.v1 import evals_pb2, evals_pb2_grpc
from libs.common.scope import scope_from
from services.evals.annotation_queues import AnnotationQueueApi
from services.evals.comments import CommentApi
from services.evals.dataset_api import DatasetApi
from services.evals.judge_api import JudgeApi
from services.evals.results import ExperimentReads
from services.evals.score_configs import ScoreConfigApi


class EvalsServicer(evals_pb2_grpc.EvalsServiceServicer):  # type: ignore[misc]
    """Score configs, datasets, experiments, comments and annotation queues; each RPC delegates
    to its domain's module. RPCs not built yet are answered UNIMPLEMENTED by the generated base,
    which the gateway maps to 501."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        score_configs: ScoreConfigApi,
        experiments: ExperimentReads,
        datasets: DatasetApi,
        comments: CommentApi,
        annotation_queues: AnnotationQueueApi,
        judge: JudgeApi,
    ) -> None:
        self._pool = pool
        self._judge = judge
        self._comments = comments
        self._queues = annotation_queues
        self._datasets = datasets
        self._score_configs = score_configs
        self._experiments = experiments

    # Score configs (services/evals/score_configs.py).

    async def GetScoreConfig(  # noqa: N802
        self, request: evals_pb2.GetScoreConfigRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetScoreConfigResponse:
        return await self._score_configs.get(scope_from(context), request)

    async def ListScoreConfigs(  # noqa: N802
        self, request: evals_pb2.ListScoreConfigsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListScoreConfigsResponse:
        return await self._score_configs.list(scope_from(context), request)

    async def CreateScoreConfig(  # noqa: N802
        self, request: evals_pb2.CreateScoreConfigRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.CreateScoreConfigResponse:
        return await self._score_configs.create(scope_from(context), request)

    async def UpdateScoreConfig(  # noqa: N802
        self, request: evals_pb2.UpdateScoreConfigRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.UpdateScoreConfigResponse:
        return await self._score_configs.update(scope_from(context), request)

    # Datasets, versioned items, runs and run items (services/evals/dataset_api.py).

    async def UpsertDataset(  # noqa: N802
        self, request: evals_pb2.UpsertDatasetRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.UpsertDatasetResponse:
        return await self._datasets.upsert_dataset(scope_from(context), request)

    async def GetDataset(  # noqa: N802
        self, request: evals_pb2.GetDatasetRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetDatasetResponse:
        return await self._datasets.get_dataset(scope_from(context), request)

    async def ListDatasets(  # noqa: N802
        self, request: evals_pb2.ListDatasetsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListDatasetsResponse:
        return await self._datasets.list_datasets(scope_from(context), request)

    async def DeleteDataset(  # noqa: N802
        self, request: evals_pb2.DeleteDatasetRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.DeleteDatasetResponse:
        return await self._datasets.delete_dataset(scope_from(context), request)

    async def UpsertDatasetItem(  # noqa: N802
        self, request: evals_pb2.UpsertDatasetItemRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.UpsertDatasetItemResponse:
        return await self._datasets.upsert_item(scope_from(context), request)

    async def GetDatasetItem(  # noqa: N802
        self, request: evals_pb2.GetDatasetItemRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetDatasetItemResponse:
        return await self._datasets.get_item(scope_from(context), request)

    async def ListDatasetItems(  # noqa: N802
        self, request: evals_pb2.ListDatasetItemsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListDatasetItemsResponse:
        return await self._datasets.list_items(scope_from(context), request)

    async def DeleteDatasetItem(  # noqa: N802
        self, request: evals_pb2.DeleteDatasetItemRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.DeleteDatasetItemResponse:
        return await self._datasets.delete_item(scope_from(context), request)

    async def CreateDatasetRunItem(  # noqa: N802
        self, request: evals_pb2.CreateDatasetRunItemRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.CreateDatasetRunItemResponse:
        return await self._datasets.create_run_item(scope_from(context), request)

    async def ListDatasetRunItems(  # noqa: N802
        self, request: evals_pb2.ListDatasetRunItemsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListDatasetRunItemsResponse:
        return await self._datasets.list_run_items(scope_from(context), request)

    async def ListDatasetRuns(  # noqa: N802
        self, request: evals_pb2.ListDatasetRunsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListDatasetRunsResponse:
        return await self._datasets.list_runs(scope_from(context), request)

    async def GetDatasetRun(  # noqa: N802
        self, request: evals_pb2.GetDatasetRunRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetDatasetRunResponse:
        return await self._datasets.get_run(scope_from(context), request)

    async def DeleteDatasetRun(  # noqa: N802
        self, request: evals_pb2.DeleteDatasetRunRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.DeleteDatasetRunResponse:
        return await self._datasets.delete_run(scope_from(context), request)

    # Experiments and run results (services/evals/results.py).

    async def ListExperiments(  # noqa: N802
        self, request: evals_pb2.ListExperimentsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListExperimentsResponse:
        return await self._experiments.list_experiments(scope_from(context), request)

    async def ListExperimentItems(  # noqa: N802
        self, request: evals_pb2.ListExperimentItemsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListExperimentItemsResponse:
        return await self._experiments.list_items(scope_from(context), request)

    async def GetRunResults(  # noqa: N802
        self, request: evals_pb2.GetRunResultsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetRunResultsResponse:
        results = await self._experiments.run_results(scope_from(context), request.run_id)
        return evals_pb2.GetRunResultsResponse(results_json=orjson.dumps(results))

    # Comments (services/evals/comments.py).

    async def CreateComment(  # noqa: N802
        self, request: evals_pb2.CreateCommentRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.CreateCommentResponse:
        return await self._comments.create(scope_from(context), request)

    async def GetComment(  # noqa: N802
        self, request: evals_pb2.GetCommentRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetCommentResponse:
        return await self._comments.get(scope_from(context), request)

    async def ListComments(  # noqa: N802
        self, request: evals_pb2.ListCommentsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListCommentsResponse:
        return await self._comments.list(scope_from(context), request)

    # Annotation queues, their items and assignments (services/evals/annotation_queues.py).

    async def CreateAnnotationQueue(  # noqa: N802
        self, request: evals_pb2.CreateAnnotationQueueRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.CreateAnnotationQueueResponse:
        return await self._queues.create_queue(scope_from(context), request)

    async def GetAnnotationQueue(  # noqa: N802
        self, request: evals_pb2.GetAnnotationQueueRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetAnnotationQueueResponse:
        return await self._queues.get_queue(scope_from(context), request)

    async def ListAnnotationQueues(  # noqa: N802
        self, request: evals_pb2.ListAnnotationQueuesRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListAnnotationQueuesResponse:
        return await self._queues.list_queues(scope_from(context), request)

    async def CreateAnnotationQueueItem(  # noqa: N802
        self,
        request: evals_pb2.CreateAnnotationQueueItemRequest,
        context: grpc.aio.ServicerContext,
    ) -> evals_pb2.CreateAnnotationQueueItemResponse:
        return await self._queues.create_item(scope_from(context), request)

    async def GetAnnotationQueueItem(  # noqa: N802
        self, request: evals_pb2.GetAnnotationQueueItemRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetAnnotationQueueItemResponse:
        return await self._queues.get_item(scope_from(context), request)

    async def ListAnnotationQueueItems(  # noqa: N802
        self,
        request: evals_pb2.ListAnnotationQueueItemsRequest,
        context: grpc.aio.ServicerContext,
    ) -> evals_pb2.ListAnnotationQueueItemsResponse:
        return await self._queues.list_items(scope_from(context), request)

    async def UpdateAnnotationQueueItem(  # noqa: N802
        self,
        request: evals_pb2.UpdateAnnotationQueueItemRequest,
        context: grpc.aio.ServicerContext,
    ) -> evals_pb2.UpdateAnnotationQueueItemResponse:
        return await self._queues.update_item(scope_from(context), request)

    async def DeleteAnnotationQueueItem(  # noqa: N802
        self,
        request: evals_pb2.DeleteAnnotationQueueItemRequest,
        context: grpc.aio.ServicerContext,
    ) -> evals_pb2.DeleteAnnotationQueueItemResponse:
        return await self._queues.delete_item(scope_from(context), request)

    async def CreateAnnotationQueueAssignment(  # noqa: N802
        self,
        request: evals_pb2.CreateAnnotationQueueAssignmentRequest,
        context: grpc.aio.ServicerContext,
    ) -> evals_pb2.CreateAnnotationQueueAssignmentResponse:
        return await self._queues.assign(scope_from(context), request)

    async def DeleteAnnotationQueueAssignment(  # noqa: N802
        self,
        request: evals_pb2.DeleteAnnotationQueueAssignmentRequest,
        context: grpc.aio.ServicerContext,
    ) -> evals_pb2.DeleteAnnotationQueueAssignmentResponse:
        return await self._queues.unassign(scope_from(context), request)

    # LLM-as-a-judge: connections, evaluators, rules and jobs (services/evals/judge_api.py).

    async def UpsertLlmConnection(  # noqa: N802
        self, request: evals_pb2.UpsertLlmConnectionRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.UpsertLlmConnectionResponse:
        return await self._judge.upsert_connection(scope_from(context), request)

    async def ListLlmConnections(  # noqa: N802
        self, request: evals_pb2.ListLlmConnectionsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListLlmConnectionsResponse:
        return await self._judge.list_connections(scope_from(context), request)

    async def DeleteLlmConnection(  # noqa: N802
        self, request: evals_pb2.DeleteLlmConnectionRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.DeleteLlmConnectionResponse:
        return await self._judge.delete_connection(scope_from(context), request)

    async def CreateEvaluator(  # noqa: N802
        self, request: evals_pb2.CreateEvaluatorRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.CreateEvaluatorResponse:
        return await self._judge.create_evaluator(scope_from(context), request)

    async def GetEvaluator(  # noqa: N802
        self, request: evals_pb2.GetEvaluatorRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetEvaluatorResponse:
        return await self._judge.get_evaluator(scope_from(context), request)

    async def ListEvaluators(  # noqa: N802
        self, request: evals_pb2.ListEvaluatorsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListEvaluatorsResponse:
        return await self._judge.list_evaluators(scope_from(context), request)

    async def UpdateEvaluator(  # noqa: N802
        self, request: evals_pb2.UpdateEvaluatorRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.UpdateEvaluatorResponse:
        return await self._judge.update_evaluator(scope_from(context), request)

    async def DeleteEvaluator(  # noqa: N802
        self, request: evals_pb2.DeleteEvaluatorRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.DeleteEvaluatorResponse:
        return await self._judge.delete_evaluator(scope_from(context), request)

    async def ListEvaluatorVersions(  # noqa: N802
        self, request: evals_pb2.ListEvaluatorVersionsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListEvaluatorVersionsResponse:
        return await self._judge.list_evaluator_versions(scope_from(context), request)

    async def CreateEvaluationRule(  # noqa: N802
        self, request: evals_pb2.CreateEvaluationRuleRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.CreateEvaluationRuleResponse:
        return await self._judge.create_rule(scope_from(context), request)

    async def GetEvaluationRule(  # noqa: N802
        self, request: evals_pb2.GetEvaluationRuleRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetEvaluationRuleResponse:
        return await self._judge.get_rule(scope_from(context), request)

    async def ListEvaluationRules(  # noqa: N802
        self, request: evals_pb2.ListEvaluationRulesRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListEvaluationRulesResponse:
        return await self._judge.list_rules(scope_from(context), request)

    async def UpdateEvaluationRule(  # noqa: N802
        self, request: evals_pb2.UpdateEvaluationRuleRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.UpdateEvaluationRuleResponse:
        return await self._judge.update_rule(scope_from(context), request)

    async def DeleteEvaluationRule(  # noqa: N802
        self, request: evals_pb2.DeleteEvaluationRuleRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.DeleteEvaluationRuleResponse:
        return await self._judge.delete_rule(scope_from(context), request)

    async def ListJudgeJobs(  # noqa: N802
        self, request: evals_pb2.ListJudgeJobsRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.ListJudgeJobsResponse:
        return await self._judge.list_jobs(scope_from(context), request)
