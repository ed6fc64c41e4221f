"""``POST /api/login/access-token``: the OAuth2 password flow (form fields ``username`` = e-mail, ``password``)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from order_service import crud
from order_service.api.deps import SessionDep, SettingsDep, client_address, limit_by_address
from order_service.core.security import create_access_token, hash_password, verify_password
from order_service.models import EMAIL_MAX_LENGTH
from order_service.schemas import Message, Token

logger = logging.getLogger(__name__)

router = APIRouter(tags=["login"])


@router.post(
    "/login/access-token",
    response_model=Token,
    dependencies=[Depends(limit_by_address)],
    responses={400: {"model": Message}, 429: {"model": Message}},
)
def login_access_token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> Token:
    """Exchange e-mail and password for a bearer token valid ``ACCESS_TOKEN_EXPIRE_MINUTES``.

    400 ``incorrect email or password`` for an unknown e-mail, a wrong password or a
    deactivated user (one answer for all, in about the same time); 429 over the
    per-address rate limit.

    A refusal is logged at WARNING as ``login refused`` with the client's address (``client``,
    the real client behind nginx): the line fail2ban-style tools ban on. Never the e-mail or password.
    """
    user = crud.get_user_by_email(session, form.username) if len(form.username) <= EMAIL_MAX_LENGTH else None
    if user is None:
        hash_password(form.password, settings.PASSWORD_HASH_ROUNDS)  # same cost as a real check
    if user is None or not verify_password(form.password, user.hashed_password) or not user.is_active:
        logger.warning("login refused", extra={"client": client_address(request)})
        raise HTTPException(status_code=status.HTTP_400_BAD_REQUEST, detail="incorrect email or password")
    token, lifetime = create_access_token(
        user.id, user.role.value, settings.SECRET_KEY.get_secret_value(), settings.ACCESS_TOKEN_EXPIRE_MINUTES
    )
    logger.info("login", extra={"user_id": str(user.id), "role": user.role.value})
    return Token(access_token=token, token_type="bearer", expires_in=lifetime)
