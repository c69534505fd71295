"""Domain errors raised by handlers and stores. One interceptor (libs.common.rpc) maps them to
gRPC status codes, and the gateway maps those to Langfuse's HTTP errors, so no layer in between
formats errors by hand."""


class DomainError(Exception):
    """Base of every error a client may see; its message is shown to the client as is."""


class InvalidArgument(DomainError):
    pass


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class Unavailable(DomainError):
    """A store or peer is down; the client may retry."""


class PayloadTooLarge(DomainError):
    """A body (or what it decompresses to) over a configured limit; the gateway answers 413."""
