"""Bearer JWT identity (HS256): ``sub`` is the user id, ``role`` what they may do."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Literal

import jwt

# ``service``: another of the marketplace's services (registers jobs; reads no
# interview, view or inbox of anyone).
ROLES = ("client", "freelancer", "auditor", "admin", "service")
Role = Literal["client", "freelancer", "auditor", "admin", "service"]
MAX_SUB_LENGTH = 128
ALGORITHM = "HS256"


class AuthError(Exception):
    """No token, or a token that is not valid."""


@dataclass(frozen=True)
class Principal:
    id: str
    role: Role

    @property
    def is_reader(self) -> bool:
        """Auditors and admins read everything and change nothing."""
        return self.role in ("auditor", "admin")


def check_claims(sub: str, role: str, ttl_seconds: int) -> None:
    """Raises ValueError unless a token with these claims would be accepted."""
    if not sub.strip():
        raise ValueError("the user id (--sub) must not be empty or blank")
    if sub != sub.strip() or len(sub) > MAX_SUB_LENGTH:
        raise ValueError(
            f"the user id (--sub) must be at most {MAX_SUB_LENGTH} characters, "
            "without leading or trailing spaces"
        )
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if ttl_seconds <= 0:
        raise ValueError("the lifetime (--ttl) must be a positive number of seconds")


def mint_token(secret: str, sub: str, role: str, ttl_seconds: int = 24 * 3600) -> str:
    """A signed token; tests may mint expired ones (``interviewctl token`` checks
    its claims with ``check_claims`` first)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    now = int(time.time())
    return jwt.encode(
        {"sub": sub, "role": role, "iat": now, "exp": now + ttl_seconds}, secret, ALGORITHM
    )


def decode_token(secret: str, token: str) -> Principal:
    principal, expires = _verified(secret, token)
    # A verified token stays valid until its exp (the same check jwt.decode makes).
    if expires <= time.time():
        raise AuthError("the token has expired")
    return principal


@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[Principal, float]:
    """The principal of a token whose signature and claims check out, and its exp.

    Cached: a client sends the same token with every request, and checking the
    signature and claims again cost about a tenth of the event loop's time per
    command. Only successes are cached (an exception is never remembered)."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.PyJWTError as error:
        raise AuthError(f"invalid token: {error}") from None
    sub, role = claims.get("sub"), claims.get("role")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_LENGTH:
        raise AuthError("invalid token: bad 'sub' claim")
    if role not in ROLES:
        raise AuthError("invalid token: 'role' must be one of " + ", ".join(ROLES))
    return Principal(id=sub, role=role), float(claims["exp"])
