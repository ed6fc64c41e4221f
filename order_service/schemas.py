"""Request and response models (pydantic v2).

Request models forbid unknown fields (a client sending ``total_minor`` gets a
422: the server computes totals) and bound every size: string lengths, number of
lines, quantities and prices. Integers are strict: ``"3"``, ``3.0`` and ``true``
are refused rather than coerced, as money must be exact. Amounts are integer
minor units of ``currency``.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from order_service.core.config import EMAIL_PATTERN
from order_service.models import (
    CUSTOMER_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    MAX_LINES_PER_ORDER,
    MAX_QUANTITY,
    MAX_UNIT_PRICE_MINOR,
    SKU_MAX_LENGTH,
    OrderStatus,
    Role,
    allowed_transitions,
)


def _storable_text(value: str) -> str:
    """Refuse control characters (NUL cannot be stored) and unpaired surrogates (not UTF-8)."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError("must not contain control characters or unpaired surrogates")
    return value


Customer = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=CUSTOMER_MAX_LENGTH),
    AfterValidator(_storable_text),
]
#: ISO 4217 alphabetic code: three upper-case ASCII letters, e.g. ``EUR``.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SKU_MAX_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"),
]
Quantity = Annotated[StrictInt, Field(gt=0, le=MAX_QUANTITY)]
UnitPriceMinor = Annotated[StrictInt, Field(ge=0, le=MAX_UNIT_PRICE_MINOR)]


class OrderLineCreate(BaseModel):
    """A requested line: ``quantity`` (1..10000) of ``sku`` at ``unit_price_minor`` (0..10^10) each."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Quantity
    unit_price_minor: UnitPriceMinor


class OrderCreate(BaseModel):
    """Body of ``POST /api/orders``: customer, currency and 1..100 lines; no totals."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer": "ACME GmbH",
                    "currency": "EUR",
                    "lines": [{"sku": "WIDGET-1", "quantity": 3, "unit_price_minor": 1250}],
                }
            ]
        },
    )

    customer: Customer
    currency: Currency
    lines: Annotated[list[OrderLineCreate], Field(min_length=1, max_length=MAX_LINES_PER_ORDER)]


class OrderLinePublic(BaseModel):
    """A stored line, with its ``line_total_minor = quantity * unit_price_minor``."""

    model_config = ConfigDict(from_attributes=True)

    sku: str
    quantity: int
    unit_price_minor: int
    line_total_minor: int


class OrderPublic(BaseModel):
    """A stored order; ``total_minor`` is the sum of its line totals, computed by the server.

    ``allowed_transitions`` are the statuses the signed-in user may move the order to now
    (:func:`~order_service.models.allowed_transitions` of its status and the user's role):
    build it with ``OrderPublic.model_validate(order, context={"role": role})``.
    """

    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=True)

    id: uuid.UUID
    customer: str
    currency: str
    status: OrderStatus
    total_minor: int
    created_at: datetime
    owner_id: uuid.UUID | None
    version: int
    lines: list[OrderLinePublic]
    allowed_transitions: list[OrderStatus] = Field(
        default=None,  # type: ignore[assignment] - always replaced by _for_role
        validate_default=True,
        description="Statuses the signed-in user may move this order to now (empty: none), lifecycle order",
    )

    @field_validator("allowed_transitions", mode="before")
    @classmethod
    def _for_role(cls, value: object, info: ValidationInfo) -> object:
        """Computed from ``status`` and the ``role`` in the validation context, never taken from input."""
        role = (info.context or {}).get("role")
        if role is None:
            if value is None:
                raise ValueError("OrderPublic needs the signed-in role in its validation context")
            return value  # an OrderPublic dumped and validated again (FastAPI's response check)
        if "status" not in info.data:
            return []  # status itself failed validation and is reported
        return allowed_transitions(info.data["status"], role)


class TransitionCreate(BaseModel):
    """Body of ``POST /api/orders/{id}/transitions``: the wanted status."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"to": "paid"}]})

    to: OrderStatus


class TransitionPublic(BaseModel):
    """One audit record: ``from_status`` -> ``to_status`` by ``actor_email`` at ``created_at``."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    order_id: uuid.UUID
    from_status: OrderStatus
    to_status: OrderStatus
    actor_id: uuid.UUID | None
    actor_email: str
    created_at: datetime


class Conflict(BaseModel):
    """409 of an illegal status change: why, and the order's current status."""

    detail: str
    current_status: OrderStatus


class AttachmentPublic(BaseModel):
    """Metadata of an attachment; the bytes are at ``GET .../attachments/{id}/content``."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN),
]
#: 8..256 characters; no control characters.
Password = Annotated[str, StringConstraints(min_length=8, max_length=256), AfterValidator(_storable_text)]


class UserCreate(BaseModel):
    """Body of ``POST /api/users`` (admins): e-mail, password and role (default ``customer``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "ops@example.com", "password": "a long passphrase", "role": "operator"}]
        },
    )

    email: Email
    password: Password
    role: Role = Role.customer


class UserUpdate(BaseModel):
    """Body of ``PATCH /api/users/{id}`` (admins): any of role, active flag, new password."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None


class UserPublic(BaseModel):
    """A user, without the password hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class Token(BaseModel):
    """Answer of the token endpoint (OAuth2 password flow): a bearer JWT and its lifetime in seconds."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


class OrderPage(BaseModel):
    """One page of ``GET /api/orders``, newest first.

    ``next`` is an opaque cursor: pass it as ``?cursor=`` for the following page;
    ``null`` on the last page.
    """

    items: list[OrderPublic]
    next: str | None


class Message(BaseModel):
    """Error body of 4xx/5xx answers other than validation errors."""

    detail: str


class FieldError(BaseModel):
    """One validation problem: where (``loc``, e.g. ``["body", "lines", 0, "quantity"]``), what and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """Body of every 422 answer."""

    detail: list[FieldError]


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Readiness answer: ``checks`` maps ``database``/``migrations``/``redis`` to ``ok`` or the error kind."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
