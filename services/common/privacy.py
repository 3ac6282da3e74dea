"""Personal text sealed with its author's key (crypto-shredding): the shared contract.

Free text a person writes (invitation and offer messages, decline, cancel,
reschedule and withdrawal reasons) is personal data. The interviews service
seals each such field with AES-256-GCM under a data key that belongs to the
field's author *before* the event is recorded, so the event store, its hash
chain, the Kafka topic and every export hold only ciphertext. Erasing a person
destroys their data keys: every copy of their words becomes unreadable at once,
and the hash chain still verifies because it never covered the text.

A sealed field travels as a JSON object (in stored events and in the
integration envelope's ``data``)::

    {"key_id": "...", "alg": "A256GCM", "nonce": "<base64url>", "ciphertext": "<base64url>"}

The key id is bound to the ciphertext as associated data, so a sealed value
cannot be moved under another person's key. Events recorded before sealing
existed carry plain strings; :func:`reveal` passes those through unchanged.

Readers never see keys directly: they ask a :class:`KeyService` (in-process
when embedded, the interviews service's authenticated ``/internal/keys`` API
when run as separate processes) through a :class:`CachingKeys` with a short
TTL. A destroyed key answers :class:`KeyErased`; the field then reads ``null``
and is listed in ``erased_fields``.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .randomness import random_bytes

ALG = "A256GCM"
SEALED_KEYS = frozenset({"key_id", "alg", "nonce", "ciphertext"})

# The personal free-text fields of each integration event type (``data`` keys).
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "interview.invited": ("message",),
    "interview.declined": ("reason",),
    "interview.rescheduled": ("reason",),
    "interview.offer_extended": ("message",),
    "interview.offer_declined": ("reason",),
    "interview.offer_withdrawn": ("reason",),
    "interview.cancelled": ("reason",),
}


class KeyErased(Exception):
    """The data key was destroyed by an erasure: the text is gone for good."""


class KeyNotFound(Exception):
    """No data key has this id (never issued here)."""


class KeyServiceUnavailable(Exception):
    """The key service cannot be reached now: retry later, never treat as erased."""


class SealedTextError(ValueError):
    """A value claims to be sealed text but is malformed or fails authentication."""


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(raw: bytes) -> str:
    """base64url without padding (``base64.urlsafe_b64encode`` in one C call)."""
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SealedTextError("sealed text is not base64url") from exc


class SealedValue(dict[str, str]):
    """A sealed field as :func:`seal` makes it: a plain JSON object to every
    encoder and equal to its ``dict`` copy, but unchangeable, so copying it is
    the value itself (eventsourcing deep-copies a cached aggregate on every
    read, and an interview holds its sealed message for life)."""

    __slots__ = ()

    def __copy__(self) -> SealedValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SealedValue:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (SealedValue, (dict(self),))

    def _unchangeable(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a sealed value cannot be changed: copy it with dict() first")

    __setitem__ = __delitem__ = __ior__ = _unchangeable
    update = pop = popitem = clear = setdefault = _unchangeable


# AESGCM objects by key: building one costs more than sealing a short text with it.
# Keyed by the key bytes themselves, so the cache gives nothing to a caller that
# does not already hold the key; entries go after CIPHER_SECONDS (and with
# ``forget_ciphers``), so a destroyed key does not stay here once its holders
# (CachingKeys, the key store's current keys) have dropped it.
CIPHER_SECONDS = 5.0
CIPHERS_KEPT = 4096
_ciphers: dict[bytes, tuple[float, AESGCM]] = {}
_ciphers_swept = [0.0]


def _cipher(key: bytes) -> AESGCM:
    now = time.monotonic()
    hit = _ciphers.get(key)
    if hit is not None and now - hit[0] < CIPHER_SECONDS:
        return hit[1]
    cipher = AESGCM(key)
    if now - _ciphers_swept[0] >= CIPHER_SECONDS or len(_ciphers) >= CIPHERS_KEPT:
        _ciphers_swept[0] = now
        for old, (made, _) in list(_ciphers.items()):
            if now - made >= CIPHER_SECONDS:
                _ciphers.pop(old, None)
        if len(_ciphers) >= CIPHERS_KEPT:
            _ciphers.clear()
    _ciphers[key] = (now, cipher)
    return cipher


def forget_ciphers(keys: list[bytes] | tuple[bytes, ...] | None = None) -> None:
    """Drops the cached AESGCM objects of ``keys`` (all of them when None)."""
    if keys is None:
        _ciphers.clear()
    for key in keys or ():
        _ciphers.pop(key, None)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def is_sealed(value: object) -> bool:
    """True if ``value`` has the shape of a sealed field (a dict with exactly the four keys)."""
    return isinstance(value, Mapping) and set(value) == SEALED_KEYS


def seal(key: bytes, key_id: str, text: str) -> dict[str, str]:
    """Encrypts ``text`` under ``key`` with a fresh random 96-bit nonce; the result
    is the JSON-ready sealed field (a :class:`SealedValue`)."""
    nonce = random_bytes(12)  # os.urandom's bytes, without a GIL release per call
    ciphertext = _cipher(key).encrypt(nonce, text.encode("utf-8"), key_id.encode("utf-8"))
    return SealedValue(key_id=key_id, alg=ALG, nonce=_b64(nonce), ciphertext=_b64(ciphertext))


def unseal(key: bytes, sealed: Mapping[str, Any]) -> str:
    """Decrypts a sealed field; raises :class:`SealedTextError` if it does not authenticate."""
    if not is_sealed(sealed) or sealed["alg"] != ALG:
        raise SealedTextError("not a sealed text value")
    try:
        plain = _cipher(key).decrypt(
            _unb64(str(sealed["nonce"])),
            _unb64(str(sealed["ciphertext"])),
            str(sealed["key_id"]).encode("utf-8"),
        )
    except InvalidTag as exc:
        raise SealedTextError("sealed text does not authenticate under its key") from exc
    return plain.decode("utf-8")


def key_id_of(value: object) -> str | None:
    """The key id of a sealed value, None for anything else (plain legacy text, None)."""
    return str(value["key_id"]) if is_sealed(value) else None  # type: ignore[index]  # is_sealed checked it is a mapping


@dataclass(frozen=True)
class ErasureTask:
    """An erasure a consumer service still has to carry out on its stored copies."""

    id: str
    subject_id: str
    key_ids: tuple[str, ...]
    keys_destroyed_at: datetime


class KeyService(Protocol):
    """What readers (projections, notifications, audit views) need from the key owner."""

    def data_key(self, key_id: str) -> bytes:
        """The data key; raises KeyErased, KeyNotFound or KeyServiceUnavailable."""
        ...

    def pending_erasures(self, service: str) -> list[ErasureTask]:
        """Erasures whose keys are destroyed and that ``service`` has not reported done."""
        ...

    def erasure_done(self, erasure_id: str, service: str) -> None:
        """``service`` has redacted every stored copy for this erasure."""
        ...


class KeyIssuer(Protocol):
    """What the writer (the interviews service) needs: the author's current data key."""

    def key_for(self, subject_id: str) -> tuple[str, bytes]:
        """``(key_id, key)`` of the subject's data key, created on first use.

        A subject whose keys were erased gets a fresh key: words written after an
        erasure belong to the person again and can be erased again.
        """
        ...


class CachingKeys:
    """A KeyService's ``data_key`` behind a short-TTL cache (erased answers are cached too).

    Consumers wait for ``ttl`` past an erasure's key destruction before they
    redact, so no process can still hold the destroyed key by then.
    """

    def __init__(
        self,
        inner: KeyService,
        ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, bytes | None]] = {}

    def data_key(self, key_id: str) -> bytes:
        now = self._clock()
        hit = self._entries.get(key_id)  # one dict read: atomic, no lock needed
        if hit is not None and now - hit[0] < self.ttl:
            if hit[1] is None:
                raise KeyErased(key_id)
            return hit[1]
        try:
            key: bytes | None = self.inner.data_key(key_id)
        except KeyErased:
            key = None
        with self._lock:
            self._entries[key_id] = (now, key)
        if key is None:
            raise KeyErased(key_id)
        return key

    def forget(self, key_ids: tuple[str, ...] | list[str] | None = None) -> None:
        """Drops cached keys (all of them when ``key_ids`` is None), and their ciphers."""
        with self._lock:
            if key_ids is None:
                dropped = list(self._entries.values())
                self._entries.clear()
            else:
                dropped = [e for e in (self._entries.pop(k, None) for k in key_ids) if e]
        forget_ciphers([key for _, key in dropped if key is not None])


def reveal_value(value: object, keys: CachingKeys | KeyService) -> tuple[str | None, bool]:
    """One field's text and whether it was erased.

    Plain strings (events from before sealing) and None pass through. A sealed
    value whose key is destroyed reads ``(None, True)``.
    KeyServiceUnavailable propagates: the caller retries or answers 503.
    """
    if not is_sealed(value):
        return (value if value is None else str(value)), False
    try:
        key = keys.data_key(str(value["key_id"]))  # type: ignore[index]  # is_sealed: a mapping
    except (KeyErased, KeyNotFound):
        return None, True
    return unseal(key, value), False  # type: ignore[arg-type]  # is_sealed: a mapping


def reveal(
    event_type: str, data: Mapping[str, Any], keys: CachingKeys | KeyService
) -> tuple[dict[str, Any], list[str]]:
    """A copy of an event's ``data`` with its personal fields in clear, and the erased ones.

    Erased fields read ``None``; their names are returned in order.
    """
    out = dict(data)
    erased: list[str] = []
    for name in PERSONAL_FIELDS.get(event_type, ()):
        if name in out:
            out[name], gone = reveal_value(out[name], keys)
            if gone:
                erased.append(name)
    return out, erased


@dataclass
class InMemoryKeys:
    """KeyService and KeyIssuer in memory: for unit tests and tools with no database."""

    keys: dict[str, bytes] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)  # subject id -> current key id
    owners: dict[str, str] = field(default_factory=dict)  # key id -> subject id
    erased: set[str] = field(default_factory=set)
    erasures: dict[str, ErasureTask] = field(default_factory=dict)
    done: dict[str, set[str]] = field(default_factory=dict)

    def key_for(self, subject_id: str) -> tuple[str, bytes]:
        key_id = self.subjects.get(subject_id)
        if key_id is None:
            key_id = str(uuid.uuid4())
            self.keys[key_id] = new_data_key()
            self.subjects[subject_id] = key_id
            self.owners[key_id] = subject_id
        return key_id, self.keys[key_id]

    def cached_key_for(self, subject_id: str) -> tuple[str, bytes] | None:
        """``key_for``: in memory, never a wait."""
        return self.key_for(subject_id)

    def data_key(self, key_id: str) -> bytes:
        if key_id in self.erased:
            raise KeyErased(key_id)
        if key_id not in self.keys:
            raise KeyNotFound(key_id)
        return self.keys[key_id]

    def erase(self, subject_id: str, at: datetime | None = None) -> ErasureTask:
        """Destroys every key of the subject and opens an erasure task."""
        key_ids = tuple(k for k, owner in self.owners.items() if owner == subject_id)
        for key_id in key_ids:
            self.keys.pop(key_id, None)
            self.erased.add(key_id)
        self.subjects.pop(subject_id, None)
        task = ErasureTask(str(uuid.uuid4()), subject_id, key_ids, at or datetime.now(UTC))
        self.erasures[task.id] = task
        self.done[task.id] = set()
        return task

    def pending_erasures(self, service: str) -> list[ErasureTask]:
        return [t for t in self.erasures.values() if service not in self.done[t.id]]

    def erasure_done(self, erasure_id: str, service: str) -> None:
        self.done[erasure_id].add(service)
