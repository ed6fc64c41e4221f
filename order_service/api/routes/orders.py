"""``/api/orders``: create (idempotent), read (ETag), list (filters, cursor), status transitions, attachments.

Access: every route needs a bearer token. ``customer`` users see and create only
their own orders (another's order is a 404, its existence is not revealed);
``operator`` and ``admin`` see all and change status. Every order returned carries
``allowed_transitions``: the statuses the caller may move it to now (one rule,
:func:`order_service.models.allowed_transitions`); a replayed ``Idempotency-Key``
answer is the first answer as it was stored.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Header, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime

from order_service import crud, idempotency, metrics
from order_service.api.deps import (
    AutocommitSessionDep,
    CurrentUser,
    Principal,
    RedisDep,
    SessionDep,
    SettingsDep,
    StaffUser,
    StorageDep,
)
from order_service.models import Attachment, Order, OrderStatus, Role
from order_service.schemas import (
    AttachmentPublic,
    Conflict,
    Message,
    OrderCreate,
    OrderPage,
    OrderPublic,
    TransitionCreate,
    TransitionPublic,
    ValidationErrorBody,
)
from order_service.storage import StorageError

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/orders",
    tags=["orders"],
    responses={
        401: {"model": Message, "description": "Not authenticated"},
        422: {"model": ValidationErrorBody, "description": "Invalid request"},
        429: {"model": Message, "description": "Rate limit exceeded"},
        503: {"model": Message, "description": "Database unavailable"},
    },
)

#: Page size bounds of ``GET /api/orders``.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_ETAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')


def etag(order: Order) -> str:
    """The order's entity tag: its version, quoted (``"3"``)."""
    return f'"{order.version}"'


def _not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="order not found")


def can_see(user: Principal, order: Order) -> bool:
    """Operators and admins see every order; customers only their own."""
    return user.role != Role.customer or order.owner_id == user.id


def _visible_order(session: SessionDep, order_id: uuid.UUID, user: Principal) -> Order:
    order = crud.get_order(session, order_id)
    crud.end_read(session)
    if order is None or not can_see(user, order):
        raise _not_found()
    return order


def _header_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("header", name), "msg": message, "type": "value_error"}])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderPublic,
    responses={409: {"model": Message, "description": "Same Idempotency-Key still in flight"}},
)
def create_order(
    order_in: OrderCreate,
    user: CurrentUser,
    session: AutocommitSessionDep,  # crud.create_order is one statement
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Create a ``pending`` order owned by the caller; the total is computed from the lines.

    201 with the order, ``Location`` and ``ETag``. With ``Idempotency-Key`` (1..255
    visible ASCII characters, scoped to the caller, kept ``IDEMPOTENCY_TTL_SECONDS``):
    a retry with the same body answers the first answer again (with
    ``Idempotent-Replayed: true``); another body is 422; a retry while the first
    request runs is 409.
    """
    store = None
    request_fingerprint = ""
    if idempotency_key is not None:
        if not idempotency.valid_key(idempotency_key):
            raise _header_error("Idempotency-Key", "must be 1..255 visible ASCII characters")
        store = idempotency.IdempotencyStore(redis, user.id, idempotency_key, settings.IDEMPOTENCY_TTL_SECONDS)
        request_fingerprint = idempotency.fingerprint(order_in.model_dump(mode="json"))
        try:
            stored = store.claim(request_fingerprint)
        except idempotency.KeyReusedError:
            raise _header_error("Idempotency-Key", "already used with a different request body") from None
        except idempotency.InFlightError:
            raise HTTPException(
                status_code=status.HTTP_409_CONFLICT,
                detail="a request with this Idempotency-Key is still being processed",
                headers={"Retry-After": "1"},
            ) from None
        if stored is not None:
            return JSONResponse(
                stored.body, status_code=stored.status, headers={**stored.headers, "Idempotent-Replayed": "true"}
            )
    try:
        order = crud.create_order(session, order_in, owner_id=user.id)
    except BaseException:
        if store is not None:
            store.release()
        raise
    body = OrderPublic.model_validate(order, context={"role": user.role}).model_dump(mode="json")
    headers = {
        "Location": str(request.app.url_path_for("read_order", order_id=str(order.id))),
        "ETag": etag(order),
    }
    if store is not None:
        store.complete(request_fingerprint, idempotency.Stored(status=201, body=body, headers=headers))
    metrics.ORDERS_CREATED.labels(order.status.value).inc()
    logger.info(
        "order created",
        extra={"order_id": str(order.id), "total_minor": order.total_minor, "currency": order.currency},
    )
    return JSONResponse(body, status_code=status.HTTP_201_CREATED, headers=headers)


@router.get("/{order_id}", response_model=OrderPublic, responses={404: {"model": Message}})
def read_order(order_id: uuid.UUID, user: CurrentUser, session: AutocommitSessionDep) -> Response:
    """The order with ``order_id`` and its ``ETag``; 404 when there is none (or it is not yours).

    Serialised once, straight to JSON (the hot path: no second validation pass).
    """
    view = crud.get_order_view(session, order_id)
    crud.end_read(session)
    if view is None or (user.role == Role.customer and view["owner_id"] != user.id):
        raise _not_found()
    return Response(
        OrderPublic.model_validate(view, context={"role": user.role}).model_dump_json(),
        media_type="application/json",
        headers={"ETag": f'"{view["version"]}"'},
    )


@router.get("", response_model=OrderPage)
def list_orders(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=crud.MAX_CURSOR_LENGTH)] = None,
    status_filter: Annotated[OrderStatus | None, Query(alias="status")] = None,
    customer: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    created_from: Annotated[AwareDatetime | None, Query()] = None,
    created_to: Annotated[AwareDatetime | None, Query()] = None,
) -> OrderPage:
    """Orders newest first, ``limit`` (1..100) per page; follow ``next`` with ``?cursor=`` (same filters).

    Filters: ``status``, ``customer`` (exact name), ``created_from`` (inclusive) and
    ``created_to`` (exclusive), ISO 8601 with a time zone. Customers see their own orders only.
    """
    after = None
    if cursor is not None:
        try:
            after = crud.PageCursor.decode(cursor)
        except crud.InvalidCursorError:
            raise RequestValidationError(
                [{"loc": ("query", "cursor"), "msg": "invalid cursor", "type": "value_error"}]
            ) from None
    if customer is not None and any(unicodedata.category(char) in ("Cc", "Cs") for char in customer):
        raise RequestValidationError(
            [{"loc": ("query", "customer"), "msg": "must not contain control characters", "type": "value_error"}]
        )
    where = crud.OrderFilter(
        owner_id=user.id if user.role == Role.customer else None,
        status=status_filter,
        customer=customer.strip() if customer else None,
        created_from=created_from,
        created_to=created_to,
    )
    orders, next_cursor = crud.list_orders(session, limit=limit, after=after, where=where)
    crud.end_read(session)
    return OrderPage(
        items=[OrderPublic.model_validate(order, context={"role": user.role}) for order in orders],
        next=next_cursor.encode() if next_cursor else None,
    )


@router.post(
    "/{order_id}/transitions",
    response_model=OrderPublic,
    responses={
        403: {"model": Message},
        404: {"model": Message},
        409: {"model": Conflict, "description": "Illegal status change"},
        412: {"model": Message, "description": "If-Match does not match the current version"},
        428: {"model": Message, "description": "If-Match missing"},
    },
)
def transition_order(
    order_id: uuid.UUID,
    change: TransitionCreate,
    user: StaffUser,
    session: SessionDep,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> OrderPublic | JSONResponse:
    """Change the order's status (operators and admins); the change is recorded in the audit trail.

    Needs ``If-Match: <ETag>`` (428 without it, 412 when the order changed since).
    409 with ``current_status`` when the lifecycle forbids the change
    (``pending -> paid -> shipped -> delivered``; ``cancelled`` from ``pending`` or ``paid``).
    """
    if if_match is None:
        raise HTTPException(status_code=status.HTTP_428_PRECONDITION_REQUIRED, detail="If-Match header required")
    match = _ETAG.fullmatch(if_match.strip())
    if match is None:
        raise HTTPException(status_code=status.HTTP_412_PRECONDITION_FAILED, detail="If-Match does not match")
    try:
        changed = crud.transition_order(
            session, order_id, to=change.to, expected_version=int(match.group(1)), actor=user
        )
    except crud.StaleVersionError:
        raise HTTPException(
            status_code=status.HTTP_412_PRECONDITION_FAILED, detail="the order changed; fetch it again"
        ) from None
    except crud.IllegalTransitionError as exc:
        return JSONResponse(
            Conflict(detail=str(exc), current_status=exc.current).model_dump(mode="json"),
            status_code=status.HTTP_409_CONFLICT,
        )
    if changed is None:
        raise _not_found()
    order, previous = changed
    metrics.ORDER_TRANSITIONS.labels(previous.value, change.to.value).inc()
    response.headers["ETag"] = etag(order)
    logger.info("order status changed", extra={"order_id": str(order.id), "to": change.to.value, "by": str(user.id)})
    return OrderPublic.model_validate(order, context={"role": user.role})


@router.get(
    "/{order_id}/transitions", response_model=list[TransitionPublic], responses={404: {"model": Message}}
)
def list_transitions(order_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> list[TransitionPublic]:
    """The order's status changes, oldest first (who, when, from, to)."""
    _visible_order(session, order_id, user)
    return [TransitionPublic.model_validate(t) for t in crud.list_transitions(session, order_id)]


def _safe_filename(name: str | None) -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char) not in ("Cc", "Cs", "Zl", "Zp"))
    return name.strip()[:255] or "attachment"


@router.post(
    "/{order_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentPublic,
    responses={
        404: {"model": Message},
        413: {"model": Message, "description": "File too large"},
        415: {"model": Message, "description": "Content type not allowed"},
    },
)
def upload_attachment(
    order_id: uuid.UUID,
    file: Annotated[UploadFile, File(description="the file (multipart/form-data field `file`)")],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
) -> AttachmentPublic:
    """Attach a file to the order (whoever may see the order): 201 with its metadata.

    413 above ``ATTACHMENT_MAX_BYTES``; 415 unless its content type is in
    ``ATTACHMENT_CONTENT_TYPES``; 503 when the storage backend fails.
    """
    order = _visible_order(session, order_id, user)
    content_type = (file.content_type or "").split(";", 1)[0].strip().lower()
    if content_type not in settings.ATTACHMENT_CONTENT_TYPES:
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"content type must be one of {', '.join(settings.ATTACHMENT_CONTENT_TYPES)}",
        )
    data = file.file.read(settings.ATTACHMENT_MAX_BYTES + 1)
    if len(data) > settings.ATTACHMENT_MAX_BYTES:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"file larger than {settings.ATTACHMENT_MAX_BYTES} bytes",
        )
    attachment_id = uuid.uuid4()
    key = f"orders/{order.id}/{attachment_id}"
    storage.put(key, data, content_type)
    attachment = Attachment(
        id=attachment_id,
        order_id=order.id,
        filename=_safe_filename(file.filename),
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=key,
        uploaded_by=user.id,
    )
    try:
        crud.add_attachment(session, attachment)
    except BaseException:
        storage.delete(key)
        raise
    logger.info("attachment stored", extra={"order_id": str(order.id), "attachment_id": str(attachment_id),
                                            "size_bytes": len(data), "storage": storage.name})
    return AttachmentPublic.model_validate(attachment)


@router.get(
    "/{order_id}/attachments", response_model=list[AttachmentPublic], responses={404: {"model": Message}}
)
def list_attachments(order_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> list[AttachmentPublic]:
    """The order's attachments (metadata), oldest first."""
    _visible_order(session, order_id, user)
    return [AttachmentPublic.model_validate(a) for a in crud.list_attachments(session, order_id)]


@router.get(
    "/{order_id}/attachments/{attachment_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"model": Message}},
)
def download_attachment(
    order_id: uuid.UUID, attachment_id: uuid.UUID, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> StreamingResponse:
    """Stream the attachment's bytes (same access rules as the order), as a download."""
    _visible_order(session, order_id, user)
    attachment = crud.get_attachment(session, order_id, attachment_id)
    if attachment is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="attachment not found")
    chunks = storage.open(attachment.storage_key)
    return StreamingResponse(
        chunks,
        media_type=attachment.content_type,
        headers={
            "Content-Length": str(attachment.size_bytes),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


__all__ = ["router", "StorageError"]
