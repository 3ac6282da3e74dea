"""``/me/preferences``: the caller's own time zone (texts, reminders and e-mails
show times in it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...common.web import ERROR_RESPONSES, CurrentPrincipal
from ..preferences import DEFAULT_TIME_ZONE, Preferences, parse_time_zone


class PreferencesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(
        min_length=1,
        max_length=64,
        description="an IANA time zone name, e.g. Europe/Berlin or America/New_York",
        examples=["Europe/Berlin"],
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        parse_time_zone(value)  # UnknownTimeZoneError is a ValueError: a 422
        return value


class PreferencesPublic(BaseModel):
    time_zone: str = Field(
        description=f"IANA time zone the caller's notifications are written in "
        f"({DEFAULT_TIME_ZONE} until chosen)"
    )
    updated_at: datetime | None = Field(description="when it was last set; null: never")


def get_preferences(request: Request) -> Preferences:
    return request.app.state.container.preferences()


PreferencesDep = Annotated[Preferences, Depends(get_preferences)]

router = APIRouter(tags=["preferences"], responses=ERROR_RESPONSES)


@router.get("/me/preferences", response_model=PreferencesPublic)
def read_preferences(principal: CurrentPrincipal, prefs: PreferencesDep) -> PreferencesPublic:
    """The caller's preferences; a caller who never set any reads UTC."""
    return PreferencesPublic(**prefs.get(principal.id))


@router.put("/me/preferences", response_model=PreferencesPublic)
def write_preferences(
    body: PreferencesRequest, principal: CurrentPrincipal, prefs: PreferencesDep
) -> PreferencesPublic:
    """Sets the caller's time zone. Notifications recorded from now on show times in
    it; those already recorded keep the text they were written with. An unknown
    name is 422 ``invalid_input`` and changes nothing."""
    return PreferencesPublic(**prefs.set_time_zone(principal.id, body.time_zone))
