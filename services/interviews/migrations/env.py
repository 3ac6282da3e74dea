"""Alembic's entry point for this history (see services/common/migrations.py)."""

from services.common.migrations import run_env

run_env()
