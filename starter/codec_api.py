"""R16: Temporal's codec server protocol, for operators' Temporal UI and CLI.

`POST /codec/encode` and `POST /codec/decode` take and answer `{"payloads": [...]}` in
protobuf's JSON form (metadata values and data in base64), through the same codec the
worker uses (PAYLOAD_KEYS). Served on the operators' listener only (OPERATOR_PORT), never
on the public port. With CODEC_AUTH_TOKEN set, each call must bear it; browsers may call
from CODEC_CORS_ORIGINS (the Temporal UI's origin) only.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload

from partners.codec import EncryptionCodec, PayloadKeyError
from partners.errors import ErrorCode, Refused
from starter.auth import bearer_matches
from starter.problems import problem_responses
from starter.wiring import Wiring


class CodecPayload(BaseModel):
    metadata: dict[str, str] = Field(default_factory=dict, description="values in base64")
    data: str = Field(default="", description="base64")


class CodecPayloads(BaseModel):
    # Protobuf's JSON leaves an empty list out: `temporal workflow metadata` sends `{}`.
    payloads: list[CodecPayload] = Field(default_factory=list, max_length=1000)


_bearer = HTTPBearer(scheme_name="CodecToken", auto_error=False, description="CODEC_AUTH_TOKEN, held by the operators.")


async def operator_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Every call to the operators' listener, where CODEC_AUTH_TOKEN is set."""
    services: Wiring = request.app.state.services
    token = services.settings.codec_auth_token
    if token is None:
        return
    if not bearer_matches(credentials.credentials if credentials is not None else "", token.get_secret_value()):
        raise Refused(ErrorCode.UNAUTHORIZED, "The operators' listener needs its bearer token (CODEC_AUTH_TOKEN).")


router = APIRouter(prefix="/codec", tags=["operations"], responses=problem_responses(401, 413, 422))
# The token is asked for only where CODEC_AUTH_TOKEN is set: the document says both
# (FastAPI appends this `{}`, "no token", to the bearer dependency's own entry).
_SECURITY: dict[str, Any] = {"security": [{}]}


def _codec(request: Request) -> EncryptionCodec:
    services: Wiring = request.app.state.services
    codec = services.client.data_converter.payload_codec
    assert isinstance(codec, EncryptionCodec)
    return codec


def _payloads(body: CodecPayloads) -> list[Payload]:
    try:
        return [
            Payload(
                metadata={k: base64.b64decode(v, validate=True) for k, v in p.metadata.items()},
                data=base64.b64decode(p.data, validate=True),
            )
            for p in body.payloads
        ]
    except ValueError:  # binascii.Error, or text that is not even ASCII
        raise Refused(ErrorCode.INVALID_INPUT, "Metadata values and data are base64.") from None


def _body(payloads: list[Payload]) -> CodecPayloads:
    return CodecPayloads(
        payloads=[
            CodecPayload(
                metadata={k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                data=base64.b64encode(p.data).decode(),
            )
            for p in payloads
        ]
    )


@router.post("/encode", openapi_extra=_SECURITY)
async def codec_encode(body: CodecPayloads, request: Request) -> CodecPayloads:
    """Encrypts payloads with the current key (the first of PAYLOAD_KEYS)."""
    return _body(await _codec(request).encode(_payloads(body)))


@router.post("/decode", openapi_extra=_SECURITY)
async def codec_decode(body: CodecPayloads, request: Request) -> CodecPayloads:
    """Decrypts payloads with the key each names; any other payload is answered as it came."""
    try:
        return _body(await _codec(request).decode_for_operator(_payloads(body)))
    except PayloadKeyError as err:
        raise Refused(ErrorCode.UNDECODABLE_PAYLOAD, str(err)) from None
    except ValueError:  # the decrypted bytes are no payload (protobuf's DecodeError)
        raise Refused(ErrorCode.UNDECODABLE_PAYLOAD, "The decrypted payload is not a payload.") from None


class CodecCors:
    """CORS for /codec only: the Temporal UI calls it from the operator's browser, from
    CODEC_CORS_ORIGINS; the rest of the API is called by servers and answers no browser."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["content-type", "x-namespace", "authorization"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/codec/"):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)
