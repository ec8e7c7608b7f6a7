"""Documents: upload (files or text), list, get, delete.

A multipart upload answers per file: each file is ingested, rejected with its own 4xx reason, or
— when large — accepted for background ingestion (poll `GET /documents/{id}`). The response is
200 when every file is ready, 202 when some are still processing, 207 when some were rejected or
failed, and the first file's error status when none succeeded.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from api.deps import ServicesDep, TenantDep
from api.limits import check_metadata, setting
from api.openapi import errors
from api.services import Retrieval, Services
from memory.documents import DocumentStatus, MetadataValue
from memory.ingest import Prepared
from switchboard.errors import InvalidRequest, NotFound, PayloadTooLarge, SwitchboardError

router = APIRouter(tags=["documents"])


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    title: str | None = Field(default=None, max_length=300)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=32)
    user: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.@:+-]{1,128}$",
        description="The uploading user: forgetting them deletes the document.",
    )


class IngestionFailed(SwitchboardError):
    status = 503
    type = "server_error"
    code = "ingestion_failed"


async def _retrieval(services: Services, writing: bool = True) -> Retrieval:
    """The document store; for writing (or deleting), once the knowledge graph has opened too."""
    retrieval = await (services.documents() if writing else services.retrieval.wait())
    if retrieval is None:
        raise IngestionFailed(f"document storage is unavailable: {services.retrieval.error}")
    return retrieval


# Per file: its document, or its error envelope.
_RESULTS: dict[str, Any] = {
    "content": {"application/json": {"schema": {"type": "object", "required": ["documents"]}}}
}


@router.post(
    "/documents",
    responses={
        202: {"description": "Accepted: some files are still being ingested.", **_RESULTS},
        207: {"description": "Multi-Status: some files were rejected or failed.", **_RESULTS},
        # When no file succeeded: the first file's refusal (type, content, size).
        **errors(415, 422),
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                            "metadata": {"type": "string", "description": "JSON object"},
                            "user": {"type": "string", "description": "The uploading user"},
                        },
                    }
                },
                "application/json": {"schema": TextDocument.model_json_schema()},
            }
        }
    },
)
async def upload(request: Request, services: ServicesDep, tenant: TenantDep) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return await _upload_text(request, services, tenant)
    if content_type.startswith("multipart/form-data"):
        return await _upload_files(request, services, tenant)
    raise InvalidRequest("send files as multipart/form-data or text as application/json")


async def _upload_text(request: Request, services: Services, tenant: str) -> JSONResponse:
    """A text document: an upload like a file, so its body is held to `max_upload_bytes`."""
    raw = await _capped_body(request, services.settings.retrieval.max_upload_bytes)
    try:
        body = TextDocument.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(
            f"{param}: {first['msg']}" if param else first["msg"], param=param
        ) from None
    check_metadata(body.metadata, services.settings.limits)
    retrieval = await _retrieval(services)
    prepared = await retrieval.ingestor.prepare_text(
        tenant, body.text, body.title, body.metadata, body.user
    )
    result = await _ingest(retrieval, prepared, background=False)
    if result["status"] == DocumentStatus.FAILED:
        raise IngestionFailed(f"ingestion failed: {result['document']['error']}")
    return JSONResponse(result["document"], status_code=200)


async def _capped_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it is over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    body = bytearray()
    if not (declared.isdigit() and int(declared) > limit):
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                break
        else:
            return bytes(body)
    raise PayloadTooLarge(
        f"the text document's body is larger than {limit} bytes "
        f"({setting('retrieval', 'max_upload_bytes')})"
    )


async def _upload_files(request: Request, services: Services, tenant: str) -> JSONResponse:
    config = services.settings.retrieval
    try:
        form = await request.form(
            max_files=config.max_upload_files, max_part_size=config.max_upload_bytes
        )
    except HTTPException as exc:
        raise _form_refusal(exc, config.max_upload_files, config.max_upload_bytes) from None
    try:
        metadata = _metadata(form.get("metadata"))
        check_metadata(metadata, services.settings.limits)
        user = _user(form.get("user"))
        files = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
        if not files:
            raise InvalidRequest("no files: send them in the `files` field", param="files")
        retrieval = await _retrieval(services)
        results = []
        for upload in files:
            results.append(await _ingest_file(retrieval, services, tenant, upload, metadata, user))
    finally:
        await form.close()
    return _summarise(results)


async def _ingest_file(
    retrieval: Retrieval,
    services: Services,
    tenant: str,
    upload: UploadFile,
    metadata: dict[str, MetadataValue],
    user: str | None,
) -> dict[str, Any]:
    name = upload.filename or "upload"
    limit = services.settings.retrieval.max_upload_bytes
    try:
        data = await upload.read()
        if len(data) > limit:
            raise PayloadTooLarge(
                f"{name} is {len(data)} bytes; at most {limit} are accepted "
                f"({setting('retrieval', 'max_upload_bytes')})"
            )
        prepared = await retrieval.ingestor.prepare_file(tenant, name, data, metadata, user)
        background = len(data) > services.settings.retrieval.background_bytes
        return {"filename": name, **await _ingest(retrieval, prepared, background)}
    except SwitchboardError as exc:
        return {"filename": name, "status": "rejected", "http_status": exc.status, **exc.envelope()}


async def _ingest(retrieval: Retrieval, prepared: Prepared, background: bool) -> dict[str, Any]:
    if background and not prepared.done:
        retrieval.ingest_in_background(prepared)
        record = prepared.record
    else:
        record = await retrieval.ingestor.run(prepared)
    return {"status": record.status.value, "document": record.public()}


def _form_refusal(exc: HTTPException, max_files: int, max_bytes: int) -> SwitchboardError:
    """Starlette's refusal of a form (too many files, a field too large) as our 413, naming
    the setting; anything else stays the 400 it was."""
    detail = str(exc.detail)
    if detail.startswith("Too many files"):
        return PayloadTooLarge(
            f"more than {max_files} files in one upload "
            f"({setting('retrieval', 'max_upload_files')})",
            param="files",
        )
    if "exceeded maximum size" in detail:
        return PayloadTooLarge(
            f"a form field is larger than {max_bytes} bytes "
            f"({setting('retrieval', 'max_upload_bytes')})"
        )
    refused = InvalidRequest(f"the upload is not a valid form: {detail}")
    refused.status = exc.status_code
    return refused


def _summarise(results: list[dict[str, Any]]) -> JSONResponse:
    statuses = {r["status"] for r in results}
    if statuses <= {DocumentStatus.READY.value}:
        code = 200
    elif statuses <= {DocumentStatus.READY.value, DocumentStatus.PROCESSING.value}:
        code = 202
    elif statuses & {DocumentStatus.READY.value, DocumentStatus.PROCESSING.value}:
        code = 207
    else:
        first = results[0]
        code = first.get("http_status", IngestionFailed.status)
        error = (
            first.get("error") or IngestionFailed(first["document"]["error"]).envelope()["error"]
        )
        return JSONResponse({"error": error, "documents": results}, status_code=code)
    return JSONResponse({"documents": results}, status_code=code)


def _user(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not _USER.fullmatch(raw):
        raise InvalidRequest("user must be 1-128 of A-Z a-z 0-9 _ . @ : + -", param="user")
    return raw


_USER = re.compile(r"[A-Za-z0-9_.@:+-]{1,128}")


def _metadata(raw: object) -> dict[str, MetadataValue]:
    if raw is None:
        return {}
    if not isinstance(raw, str):
        raise InvalidRequest("metadata must be a JSON object in a text field", param="metadata")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidRequest("metadata is not valid JSON", param="metadata") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in parsed.items()
    ):
        raise InvalidRequest(
            "metadata must be an object of strings, numbers and booleans", param="metadata"
        )
    return parsed


@router.get("/documents")
async def list_documents(services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    retrieval = await _retrieval(services, writing=False)
    records = await retrieval.store.list_documents(tenant)
    return {"documents": [r.public() for r in records]}


@router.get("/documents/{document_id}", responses=errors(404))
async def get_document(
    document_id: str, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    retrieval = await _retrieval(services, writing=False)
    record = await retrieval.store.get_document(tenant, document_id)
    if record is None:
        raise NotFound(f"no document {document_id!r}")
    return record.public()


@router.delete("/documents/{document_id}", responses=errors(404))
async def delete_document(
    document_id: str, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    retrieval = await _retrieval(services)
    if await retrieval.store.get_document(tenant, document_id) is None:
        raise NotFound(f"no document {document_id!r}")
    return {"id": document_id, "deleted": await retrieval.ingestor.delete(tenant, document_id)}
