"""How the event store encodes the domain's value types beyond the
``eventsourcing`` defaults (UUID, Decimal, datetime)."""

from __future__ import annotations

from datetime import date
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from ..domain import OfferTerms


class DateAsISO(Transcoding):
    """An offer's ``start_date``."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class OfferTermsAsDict(Transcoding):
    """The current offer, held in an interview's snapshot."""

    type = OfferTerms
    name = "offer_terms"

    def encode(self, obj: OfferTerms) -> dict[str, Any]:
        return dict(obj.__dict__)

    def decode(self, data: dict[str, Any]) -> OfferTerms:
        return OfferTerms(**data)


def register_domain_transcodings(transcoder: JSONTranscoder) -> None:
    transcoder.register(DateAsISO())
    transcoder.register(OfferTermsAsDict())
