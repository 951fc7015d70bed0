"""Errors over gRPC: the same table as over HTTP (``api/errors.py``), rendered as a gRPC status.

An exception becomes the ``ApiError`` the HTTP edge would answer with; its HTTP status gives the
gRPC code (the code an HTTP error body carries, so the two always agree), and the status's
message starts with Permify's ErrorCode name: ``ERROR_CODE_VALIDATION: metadata.depth: ...``.
The same ``google.rpc.Status`` an HTTP body holds (its ``google.rpc.ErrorInfo`` reason and, for
bad input, ``google.rpc.BadRequest`` field violations) goes in the ``grpc-status-details-bin``
trailer, where gRPC's rich-error helpers read it. A bug is a logged INTERNAL without internals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from api.errors import ApiError, error_body, translate

log = logging.getLogger("stonetown.grpc")

#: The trailer holding a serialized google.rpc.Status (gRPC's rich error model).
DETAILS_KEY = "grpc-status-details-bin"
_CODES = {code.value[0]: code for code in grpc.StatusCode}
# Imported for its messages: the details' Any values name them, and parsing needs them known.
_DETAIL_TYPES = (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest)


@dataclass(frozen=True, slots=True)
class GrpcError:
    """What a failed call answers: the code, the message and the details trailer."""

    code: grpc.StatusCode
    message: str
    details: bytes
    #: The HTTP status the same error has (the metrics label).
    http_status: int

    @property
    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((DETAILS_KEY, self.details),)


def grpc_error(exc: BaseException, where: str) -> GrpcError:
    """The status for ``exc``, raised while serving ``where`` (a method's full name)."""
    api = translate(exc)
    if api is None:
        log.error("internal error on %s", where, exc_info=exc)
        api = ApiError(500, "ERROR_CODE_INTERNAL", "internal error (logged)")
    return from_api_error(api)


def from_api_error(api: ApiError) -> GrpcError:
    body = error_body(api.status, api.reason, api.message, api.violations)
    message = f"{api.reason}: {api.message}"
    status = json_format.ParseDict(body, status_pb2.Status())
    status.message = message
    return GrpcError(_CODES[body["code"]], message, status.SerializeToString(), api.status)
