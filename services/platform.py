"""``interviewctl up``: every service in one process, on one path space.

The three services stay separate apps with their own containers; this module
only mounts their routes together and starts their workers. It is the one
place that knows all services, and no service imports another.
"""

from __future__ import annotations

from fastapi import FastAPI

from .interviews.bootstrap import InterviewsContainer, create_app


def create_platform_app() -> FastAPI:
    return create_app(InterviewsContainer())
