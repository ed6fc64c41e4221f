"""Router assembly: every route of the service, mounted by ``create_app`` under ``/api``."""

from fastapi import APIRouter

from order_service.api.routes import health, login, orders, users

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(login.router)
api_router.include_router(users.router)
api_router.include_router(orders.router)
