"""``/api/users``: the current user, and user management for admins."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy.exc import IntegrityError

from order_service import crud
from order_service.api.deps import AdminUser, CurrentUser, SessionDep, SettingsDep
from order_service.models import Role
from order_service.schemas import Message, UserCreate, UserPublic, UserUpdate

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/users",
    tags=["users"],
    responses={401: {"model": Message}, 403: {"model": Message}, 429: {"model": Message}},
)


@router.get("/me", response_model=UserPublic)
def read_me(user: CurrentUser) -> UserPublic:
    """The authenticated user."""
    return UserPublic.model_validate(user)


@router.get("", response_model=list[UserPublic])
def list_users(
    _admin: AdminUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[UserPublic]:
    """Users ordered by e-mail (admins only)."""
    return [UserPublic.model_validate(user) for user in crud.list_users(session, limit=limit, offset=offset)]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=UserPublic, responses={409: {"model": Message}}
)
def create_user(user_in: UserCreate, admin: AdminUser, session: SessionDep, settings: SettingsDep) -> UserPublic:
    """Create a user (admins only); 409 when the e-mail is taken."""
    if crud.get_user_by_email(session, user_in.email) is not None:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="a user with this email exists")
    try:
        user = crud.create_user(session, user_in, settings.PASSWORD_HASH_ROUNDS)
    except IntegrityError:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="a user with this email exists") from None
    logger.info("user created", extra={"user_id": str(user.id), "role": user.role.value, "by": str(admin.id)})
    return UserPublic.model_validate(user)


def _user_or_404(session: SessionDep, user_id: uuid.UUID) -> object:
    user = crud.get_user(session, user_id)
    if user is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="user not found")
    return user


@router.get("/{user_id}", response_model=UserPublic, responses={404: {"model": Message}})
def read_user(user_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> UserPublic:
    """One user (admins only); 404 when there is none."""
    return UserPublic.model_validate(_user_or_404(session, user_id))


@router.patch(
    "/{user_id}", response_model=UserPublic, responses={404: {"model": Message}, 409: {"model": Message}}
)
def update_user(
    user_id: uuid.UUID,
    changes: UserUpdate,
    admin: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> UserPublic:
    """Change role, active flag or password (admins only).

    409 when the change would leave no active admin (the last one cannot demote or
    deactivate itself).
    """
    user = crud.get_user(session, user_id)
    if user is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="user not found")
    loses_admin = user.role == Role.admin and user.is_active and (
        (changes.role is not None and changes.role != Role.admin) or changes.is_active is False
    )
    if loses_admin and crud.count_admins(session) <= 1:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="the last active admin must stay")
    user = crud.update_user(session, user, changes, settings.PASSWORD_HASH_ROUNDS)
    request.app.state.user_cache.forget(user.id)
    logger.info("user updated", extra={"user_id": str(user.id), "by": str(admin.id)})
    return UserPublic.model_validate(user)
