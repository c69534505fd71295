import grpc

from libs.common import errors
from libs.common.rpc import status_for


def test_domain_errors_map_to_grpc_status_codes() -> None:
    assert status_for(errors.InvalidArgument("x")) is grpc.StatusCode.INVALID_ARGUMENT
    assert status_for(errors.NotFound("x")) is grpc.StatusCode.NOT_FOUND
    assert status_for(errors.Conflict("x")) is grpc.StatusCode.ALREADY_EXISTS
    assert status_for(errors.Unauthenticated("x")) is grpc.StatusCode.UNAUTHENTICATED
    assert status_for(errors.PermissionDenied("x")) is grpc.StatusCode.PERMISSION_DENIED
    assert status_for(errors.Unavailable("x")) is grpc.StatusCode.UNAVAILABLE


def test_subclasses_inherit_their_parents_status() -> None:
    class PromptMissing(errors.NotFound):
        pass

    assert status_for(PromptMissing("x")) is grpc.StatusCode.NOT_FOUND
