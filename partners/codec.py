"""R16: every payload that crosses Temporal is encrypted (AES-256-GCM).

Keys come from PAYLOAD_KEYS, `kid:base64key` pairs separated by commas: the first
encrypts, every one decrypts, so a key is rotated by putting a new one first and
dropping the old one once no history that needs it is retained. Each payload carries
its key id in its metadata, and the key id is bound to the ciphertext (associated data).

The same converter serves every client: the worker, the API, the operator CLI, the
replayer and the tests (`data_converter`), and the codec endpoint (`/codec`) through
which operators read the payloads in the Temporal UI and CLI.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)
from temporalio.exceptions import ApplicationError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# What a payload that arrived in clear becomes when the service decodes it: no converter
# but `_RefusePlaintext` reads this encoding, and it refuses.
PLAINTEXT_REFUSED = b"binary/plaintext-refused"
PLAINTEXT_REFUSED_TYPE = "plaintext_payload"
_NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """A payload that cannot be decrypted here: its key is not held, or it was altered."""


def parse_keys(value: str) -> dict[str, bytes]:
    """`kid:base64key,...` in order (the first encrypts); each key exactly 32 bytes."""
    keys: dict[str, bytes] = {}
    for entry in value.split(","):
        kid, sep, encoded = entry.strip().partition(":")
        if not sep or not kid or not encoded:
            raise ValueError("PAYLOAD_KEYS: each entry is kid:base64key")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"PAYLOAD_KEYS: the key of {kid!r} is not base64") from None
        if len(key) != 32:
            raise ValueError(f"PAYLOAD_KEYS: the key of {kid!r} is {len(key)} bytes; AES-256 needs 32")
        if kid in keys:
            raise ValueError(f"PAYLOAD_KEYS: {kid!r} appears twice")
        keys[kid] = key
    return keys


def new_key_entry(kid: str) -> str:
    """A fresh `kid:base64key` entry (the local run's key, a rotation's new key)."""
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise ValueError("PAYLOAD_KEYS holds no key")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current = next(iter(keys))

    @property
    def current_key_id(self) -> str:
        return self._current

    def seal(self, plain: bytes, context: bytes) -> tuple[str, bytes]:
        """A secret at rest (a webhook's signing secret): encrypted with the current key,
        bound to its key id and to `context` (its row), so it cannot be moved to another."""
        kid, nonce = self._current, os.urandom(_NONCE_BYTES)
        return kid, nonce + self._ciphers[kid].encrypt(nonce, plain, kid.encode() + b"|" + context)

    def unseal(self, kid: str, sealed: bytes, context: bytes) -> bytes:
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PayloadKeyError(f"A secret is sealed with key {kid!r}, which PAYLOAD_KEYS does not hold.")
        try:
            return cipher.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], kid.encode() + b"|" + context)
        except InvalidTag:
            raise PayloadKeyError(f"A secret does not decrypt with key {kid!r}: another key or altered.") from None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        kid = self._current
        cipher = self._ciphers[kid]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), kid.encode())
            encoded.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """For the service itself (worker, API, CLI): a payload in clear was not written by
        anyone holding a key, so it is marked refused. Temporal is then no back door: a
        workflow started in clear fails, an update in clear is rejected, a signal dropped."""
        return [self._decode(payload, plaintext=False) for payload in payloads]

    async def decode_for_operator(self, payloads: Sequence[Payload]) -> list[Payload]:
        """For the codec endpoint, which only shows payloads: one in clear is shown as it is."""
        return [self._decode(payload, plaintext=True) for payload in payloads]

    def _decode(self, payload: Payload, *, plaintext: bool) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload if plaintext else Payload(metadata={"encoding": PLAINTEXT_REFUSED})
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PayloadKeyError(
                f"The payload is encrypted with key {kid!r}, which PAYLOAD_KEYS does not hold"
                f" (it holds {', '.join(repr(k) for k in self._ciphers)})."
            )
        try:
            plain = cipher.decrypt(payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:], kid.encode())
        except InvalidTag:
            raise PayloadKeyError(f"The payload does not decrypt with key {kid!r}: another key or altered.") from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


# One pydantic JSON converter per process, its cache of type adapters with it.
_PYDANTIC_JSON = PydanticJSONPlainPayloadConverter()


class _RefusePlaintext(EncodingPayloadConverter):
    """Reads a payload the codec marked as having arrived in clear, by refusing it. An
    `ApplicationError` because the SDK lets a conversion failure of that kind fail the
    workflow (instead of failing its task again and again); an update with it is rejected
    and a signal with it dropped."""

    @property
    def encoding(self) -> str:
        return PLAINTEXT_REFUSED.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None  # never writes one

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise ApplicationError(
            "A payload not encrypted with one of PAYLOAD_KEYS is refused: only the service and"
            " operators holding a key (through the codec endpoint) may speak to these workflows.",
            type=PLAINTEXT_REFUSED_TYPE,
            non_retryable=True,
        )


class PayloadConverter(CompositePayloadConverter):
    """The SDK's pydantic payload converter, sharing one JSON converter. The SDK builds
    a payload converter for each workflow run (and one for each activation it decodes);
    the SDK's own class would build a type adapter for each payload type anew with
    each, and a cached run would keep them (about 3 KB of a run's footprint:
    BENCHMARKS.md#memory-per-cached-invitation)."""

    def __init__(self) -> None:
        super().__init__(
            _RefusePlaintext(),
            *(
                _PYDANTIC_JSON if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            ),
        )


def data_converter(keys: dict[str, bytes]) -> DataConverter:
    """Pydantic payloads, encrypted; failures' messages and stack traces are encoded
    into their (encrypted) details too, so an error text holds nothing in clear."""
    return DataConverter(
        payload_converter_class=PayloadConverter,
        payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
