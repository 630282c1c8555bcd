"""Health Management routes: thin translations between HTTP and :class:`ModelService`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from healthscore.apikeys import ApiKey
from services.api.auth import require_admin, require_read
from services.api.bodies import read_limited
from services.api.documents import JSON_TYPES, YAML_TYPES, parse_document
from services.api.models_service import ModelService
from services.api.views import (
    DiffOut,
    DraftOut,
    ErrorOut,
    ModelDetailOut,
    ModelListOut,
    ModelOut,
    PreviewOut,
    PublishedOut,
    RollbackIn,
    ValidationOut,
    VersionOut,
)

_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a health-model document (docs/health-models.md)",
        "content": {t: {"schema": {"type": "object"}} for t in (*JSON_TYPES, *YAML_TYPES[:1])},
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong API key"},
    403: {"model": ErrorOut, "description": "the key lacks the scope"},
    404: {"model": ErrorOut, "description": "no such model, version or draft"},
    409: {"model": ErrorOut, "description": "conflicts with the current state"},
    413: {"model": ErrorOut, "description": "body too large"},
    415: {"model": ErrorOut, "description": "not JSON or YAML"},
    422: {"model": ErrorOut, "description": "invalid document: every error with its path"},
    503: {"model": ErrorOut, "description": "Kafka did not acknowledge; retry (safe)"},
}

Admin = Annotated[ApiKey, Depends(require_admin)]
Reader = Annotated[ApiKey, Depends(require_read)]


def _service(request: Request) -> ModelService:
    service: ModelService = request.app.state.models
    return service


Service = Annotated[ModelService, Depends(_service)]


async def _document(request: Request) -> dict[str, Any]:
    body = await read_limited(request, request.app.state.settings.max_body_bytes)
    return parse_document(body, request.headers.get("content-type"))


def models_router() -> APIRouter:
    router = APIRouter(prefix="/v1/models", tags=["health models"], responses=_ERRORS)

    @router.get("", response_model=ModelListOut)
    async def list_models(service: Service, _: Reader) -> ModelListOut:
        """List the models in force (repository and published) and those with only a draft."""
        return ModelListOut(models=[ModelOut.of(m) for m in await service.list_models()])

    @router.post("", status_code=201, response_model=DraftOut, openapi_extra=_DOCUMENT_BODY)
    async def create_draft(request: Request, service: Service, key: Admin) -> DraftOut:
        """Create a model's draft from a YAML or JSON document (saved even when invalid)."""
        document = await _document(request)
        return DraftOut.of(await service.create_draft(document, key.name))

    @router.get("/{model_id}", response_model=ModelDetailOut)
    async def get_model(model_id: str, service: Service, _: Reader) -> ModelDetailOut:
        """Get a model: what is in force, whether it has a draft, and its versions."""
        return ModelDetailOut.of(await service.get_model(model_id))

    @router.get("/{model_id}/versions", response_model=list[VersionOut])
    async def list_versions(model_id: str, service: Service, _: Reader) -> list[VersionOut]:
        """List a model's versions with their documents, newest first (0 = repository)."""
        model = await service.get_model(model_id)
        return [VersionOut.of(v) for v in model.versions]

    @router.get("/{model_id}/versions/{version}", response_model=VersionOut)
    async def get_version(model_id: str, version: int, service: Service, _: Reader) -> VersionOut:
        """Get one published version's document (version 0: the repository's model)."""
        return VersionOut.of(await service.get_version(model_id, version))

    @router.get("/{model_id}/diff", response_model=DiffOut)
    async def diff(
        model_id: str,
        service: Service,
        _: Reader,
        from_: Annotated[str, Query(alias="from", description="version, current or draft")],
        to: Annotated[str, Query(description="version, current or draft")] = "draft",
    ) -> DiffOut:
        """Diff two documents of a model: added, removed and changed paths."""
        return DiffOut.of(await service.diff(model_id, from_, to))

    @router.get("/{model_id}/draft", response_model=DraftOut)
    async def get_draft(model_id: str, service: Service, _: Reader) -> DraftOut:
        """Get a model's draft and its validation errors."""
        return DraftOut.of(await service.get_draft(model_id))

    @router.put("/{model_id}/draft", response_model=DraftOut, openapi_extra=_DOCUMENT_BODY)
    async def update_draft(
        model_id: str, request: Request, service: Service, key: Admin
    ) -> DraftOut:
        """Replace a model's draft with a YAML or JSON document."""
        document = await _document(request)
        return DraftOut.of(await service.update_draft(model_id, document, key.name))

    @router.delete("/{model_id}/draft", status_code=204)
    async def delete_draft(model_id: str, service: Service, key: Admin) -> Response:
        """Discard a model's draft."""
        await service.delete_draft(model_id, key.name)
        return Response(status_code=204)

    @router.post("/{model_id}/draft/validate", response_model=ValidationOut)
    async def validate_draft(model_id: str, service: Service, _: Admin) -> ValidationOut:
        """Validate a draft: 200 when valid, 422 listing every error with its path."""
        draft = await service.validate_draft(model_id)
        return ValidationOut(model_id=draft.model_id)

    @router.post("/{model_id}/draft/preview", response_model=PreviewOut)
    async def preview_draft(
        model_id: str,
        service: Service,
        _: Admin,
        limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    ) -> PreviewOut:
        """Rescore the accounts the draft would serve: who would change status, old and new."""
        return PreviewOut.of(await service.preview_draft(model_id, limit))

    @router.post("/{model_id}/draft/publish", status_code=201, response_model=PublishedOut)
    async def publish_draft(model_id: str, service: Service, key: Admin) -> PublishedOut:
        """Publish the draft as the model's next immutable version (after Kafka acknowledged)."""
        return PublishedOut.of(await service.publish_draft(model_id, key.name))

    @router.post("/{model_id}/rollback", status_code=201, response_model=PublishedOut)
    async def rollback(
        model_id: str, body: RollbackIn, service: Service, key: Admin
    ) -> PublishedOut:
        """Publish an earlier version's document again as a new version."""
        return PublishedOut.of(await service.rollback(model_id, body.version, key.name))

    return router
