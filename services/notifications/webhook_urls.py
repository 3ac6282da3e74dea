"""Which webhook URLs may be called: http(s) to public addresses only.

A webhook makes this service send requests wherever its owner says. Left
open, that is a server-side request forgery: the owner points it at the
loopback interface, a private network or a cloud metadata address and
learns what answers. ``UrlGuard.check`` refuses every such destination:

- a scheme other than http or https, user info (``http://good@127.0.0.1``),
  percent-encoded or backslashed hosts (parsers disagree about them);
- an address that is not global: loopback, private, link-local (including
  ``169.254.169.254``), shared (``100.64.0.0/10``), multicast, unspecified,
  reserved, documentation ranges; an IPv6 address that embeds such an IPv4
  address (IPv4-mapped, IPv4-compatible, 6to4, NAT64) counts as the embedded one;
- every spelling of them: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
  ``127.1``, ``0``, ``[::1]``, ``[::ffff:127.0.0.1]``, trailing dots; a host
  that looks numeric but is no valid address is refused too;
- ``localhost`` and ``*.localhost``, and any name whose DNS answer contains
  one internal address.

Hosts listed in ``WEBHOOK_ALLOWED_HOSTS`` skip the address rules (an operator's
own receiver on a private network). The check runs at registration and again
before every delivery, which connects to the very address that was checked
(``CheckedUrl.addresses``), so a name re-pointed after the check (DNS
rebinding) cannot switch the destination.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host name and port -> the addresses it resolves to; raises OSError when it cannot.
Resolver = Callable[[str, int], Sequence[str]]

DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class UrlNotAllowedError(ValueError):
    """The URL points (or may point) somewhere this service must not call."""


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the check, and the addresses that may be connected to."""

    scheme: str
    host: str  # lower case, no trailing dot; an IP literal in its canonical form
    port: int
    path: str  # path and query, as given ("/" when empty)
    addresses: tuple[IPAddress, ...]  # empty: allow-listed, or not resolved yet
    allow_listed: bool

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The same request addressed to one checked IP (the Host header names the host)."""
        literal = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address the operating system's resolver gives for ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_ipv4_any_spelling(host: str) -> ipaddress.IPv4Address | None:
    """The address ``inet_aton`` (and so most HTTP clients) would read ``host`` as:
    one to four dot-separated parts, each decimal, octal (leading 0) or hex (0x);
    the last part fills the remaining bytes. None if ``host`` does not look numeric;
    ``UrlNotAllowedError`` if it looks numeric but is no valid address."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    values = []
    for part in parts:
        try:
            if part.startswith("0x"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part))
        except ValueError:
            raise UrlNotAllowedError(f"{host!r} is not a valid address") from None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise UrlNotAllowedError(f"{host!r} is not a valid address")
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64)."""
    if address.version == 4:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` must not be called, or None when it is a public address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        why = refusal(inner)
        return f"it embeds {inner}, {why}" if why else None
    if isinstance(address, ipaddress.IPv6Address) and (
        address in _NAT64_LOCAL or address.teredo is not None
    ):
        return "a tunnelling address"
    for test, name in (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    ):
        if test:
            return name
    return None


def _literal(host: str) -> IPAddress | None:
    """An IP literal in any spelling, or None for a host name."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UrlNotAllowedError(f"{host!r} is not a valid IPv6 address") from None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return parse_ipv4_any_spelling(host)


def _allow_entry(entry: str) -> str:
    entry = entry.strip().lower().rstrip(".")
    try:
        literal = _literal(entry)
    except UrlNotAllowedError:
        return entry
    return str(literal) if literal is not None else entry


@dataclass(frozen=True)
class _Parts:
    scheme: str
    host: str
    port: int
    path: str
    literal: IPAddress | None


def _split(url: str) -> _Parts:
    if "\\" in url or any(c.isspace() or not c.isprintable() for c in url):
        raise UrlNotAllowedError("the URL must not contain backslashes, spaces or control codes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UrlNotAllowedError(f"not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlNotAllowedError("only http:// and https:// URLs are allowed")
    if "@" in parts.netloc:
        raise UrlNotAllowedError("the URL must not carry user info (user@host)")
    netloc = parts.netloc
    raw_host = netloc if netloc.endswith("]") or ":" not in netloc else netloc.rsplit(":", 1)[0]
    if ":" in raw_host and not raw_host.startswith("["):
        raise UrlNotAllowedError("an IPv6 address must be written in brackets")
    if "%" in raw_host:
        raise UrlNotAllowedError("the host must not be percent-encoded or carry a zone")
    host = raw_host.lower().rstrip(".") if not raw_host.startswith("[") else raw_host.lower()
    if not host:
        raise UrlNotAllowedError("the URL must name a host")
    if port == 0:
        raise UrlNotAllowedError("the URL's port must be 1 to 65535")
    literal = _literal(host)
    if literal is None:
        labels = host.split(".")
        if not all(_LABEL.match(label) for label in labels):
            raise UrlNotAllowedError(f"{host!r} is not a valid host name")
        if labels[-1].isdigit():
            raise UrlNotAllowedError(f"{host!r} looks like an address but is not a valid one")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    canonical = str(literal) if literal is not None else host
    return _Parts(scheme, canonical, port or DEFAULT_PORTS[scheme], path, literal)


def normalised_url(url: str) -> str:
    """What makes two webhook URLs the same destination: scheme, host (case, trailing
    dot, address spelling), port (default or not) and path without a trailing slash.
    Query string and fragment are ignored."""
    try:
        parts = _split(url)
    except UrlNotAllowedError:
        return url.strip().lower()
    host = f"[{parts.host}]" if ":" in parts.host else parts.host
    path = parts.path.split("?", 1)[0].rstrip("/")
    return f"{parts.scheme}://{host}:{parts.port}{path}"


class UrlGuard:
    """Refuses webhook URLs that point at internal addresses (see the module doc)."""

    def __init__(self, allowed_hosts: Iterable[str] = (), resolver: Resolver = system_resolver):
        self.allowed = frozenset(_allow_entry(h) for h in allowed_hosts if h.strip())
        self.resolver = resolver

    def check(self, url: str, *, must_resolve: bool = True) -> CheckedUrl:
        """The checked URL with every address it resolves to (all of them public).

        ``must_resolve=False`` (registration) lets a name that does not resolve
        right now through: it is checked again before every delivery, where a
        name that does not resolve is a failed attempt.
        """
        parts = _split(url)
        if parts.host in self.allowed:
            return CheckedUrl(parts.scheme, parts.host, parts.port, parts.path, (), True)
        if parts.literal is not None:
            why = refusal(parts.literal)
            if why:
                raise UrlNotAllowedError(f"{parts.host} is {why}")
            addresses: tuple[IPAddress, ...] = (parts.literal,)
        else:
            if parts.host == "localhost" or parts.host.endswith(".localhost"):
                raise UrlNotAllowedError(f"{parts.host} is the local machine")
            addresses = self._resolve(parts.host, parts.port, must_resolve)
            for address in addresses:
                why = refusal(address)
                if why:
                    raise UrlNotAllowedError(f"{parts.host} resolves to {address}, {why}")
        return CheckedUrl(parts.scheme, parts.host, parts.port, parts.path, addresses, False)

    def _resolve(self, host: str, port: int, must_resolve: bool) -> tuple[IPAddress, ...]:
        try:
            answer = self.resolver(host, port)
        except (OSError, UnicodeError) as error:
            if must_resolve:
                raise UrlNotAllowedError(f"{host} does not resolve: {error}") from None
            return ()
        addresses = []
        for raw in answer:
            try:
                addresses.append(ipaddress.ip_address(str(raw).split("%", 1)[0]))
            except ValueError:
                raise UrlNotAllowedError(f"{host} resolves to {raw!r}, not an address") from None
        if not addresses and must_resolve:
            raise UrlNotAllowedError(f"{host} resolves to no address")
        return tuple(dict.fromkeys(addresses))
