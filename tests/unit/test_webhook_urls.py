"""The webhook URL rules: http(s) to public addresses only, in every spelling."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services.notifications.webhook_urls import (
    UrlGuard,
    UrlNotAllowedError,
    normalised_url,
    parse_ipv4_any_spelling,
)


def fake_dns(table: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


DNS = fake_dns(
    {
        "hooks.example.com": ["93.184.216.34"],
        "v6.example.com": ["2606:4700::1111"],
        "rebind.example.com": ["93.184.216.34", "10.0.0.5"],
        "metadata.example.com": ["169.254.169.254"],
        "loop6.example.com": ["::1"],
        "mapped.example.com": ["::ffff:192.168.1.1"],
        "127.0.0.1.nip.io": ["127.0.0.1"],
    }
)
guard = UrlGuard((), DNS)


@pytest.mark.parametrize(
    "url",
    [
        # loopback in every spelling
        "http://127.0.0.1/hook",
        "http://127.1/hook",
        "http://127.0.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0x7f.1/hook",
        "http://0177.0.0.1/hook",
        "http://0177.1/hook",
        "http://127.0.0.1./hook",
        "http://127.000.000.001/hook",
        "HTTP://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://[0:0:0:0:0:0:0:1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:7f00:1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/hook",
        # unspecified
        "http://0/hook",
        "http://0.0.0.0/hook",
        "http://[::]/hook",
        # private, shared, link-local, metadata
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://3232235777/hook",
        "http://0xc0.0xa8.1.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[fc00::1]/hook",
        "http://[fd12:3456::1]/hook",
        # multicast, broadcast, reserved, documentation
        "http://224.0.0.1/hook",
        "http://[ff02::1]/hook",
        "http://255.255.255.255/hook",
        "http://240.0.0.1/hook",
        "http://192.0.2.1/hook",
        "http://[2001:db8::1]/hook",
        # IPv6 embeddings of internal IPv4 addresses
        "http://[2002:7f00:1::]/hook",
        "http://[2002:a9fe:a9fe::1]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://[64:ff9b::169.254.169.254]/hook",
        "http://[64:ff9b:1::1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
        # tricks with the URL itself
        "http://good.example.com@127.0.0.1/hook",
        "http://user:pw@hooks.example.com/hook",
        "http://127.0.0.1\\@hooks.example.com/hook",
        "http://%31%32%37.0.0.1/hook",
        "http://[::1%25eth0]/hook",
        "http://::1/hook",
        "http://08.0.0.1/hook",
        "http://0x1g.0.0.1/hook",
        "http://256.256.256.256/hook",
        "http://4294967296/hook",
        "http://1.2.3.4.5/hook",
        "http://hooks.123/hook",
        "ftp://hooks.example.com/hook",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
        # names whose DNS answer holds an internal address
        "http://rebind.example.com/hook",
        "https://metadata.example.com/hook",
        "http://loop6.example.com/hook",
        "http://mapped.example.com/hook",
        "http://127.0.0.1.nip.io/hook",
    ],
)
def test_an_internal_destination_is_refused_in_any_spelling(url: str) -> None:
    with pytest.raises(UrlNotAllowedError):
        guard.check(url)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://hooks.example.com/hook", "93.184.216.34"),
        ("https://HOOKS.Example.COM./hook?x=1", "93.184.216.34"),
        ("http://v6.example.com:8443/hook", "2606:4700::1111"),
        ("http://93.184.216.34/hook", "93.184.216.34"),
        ("http://1572395042/hook", "93.184.216.34"),
        ("https://[2606:4700::1111]/hook", "2606:4700::1111"),
        ("http://[::ffff:93.184.216.34]/hook", "::ffff:5db8:d822"),
        ("http://[2002:5db8:d822::1]/hook", "2002:5db8:d822::1"),
    ],
)
def test_a_public_destination_is_allowed_with_the_address_to_call(url: str, address: str) -> None:
    checked = guard.check(url)
    assert [str(a) for a in checked.addresses] == [address]
    assert not checked.allow_listed


def test_the_call_goes_to_the_checked_address_with_the_host_header_of_the_url() -> None:
    checked = guard.check("https://Hooks.Example.com:8443/in?a=1")
    (address,) = checked.addresses
    assert checked.url_for(address) == "https://93.184.216.34:8443/in?a=1"
    assert checked.host_header == "hooks.example.com:8443"
    v6 = guard.check("http://v6.example.com/")
    assert v6.url_for(v6.addresses[0]) == "http://[2606:4700::1111]:80/"
    assert v6.host_header == "v6.example.com"


def test_an_allow_listed_host_may_be_internal_but_only_that_host() -> None:
    allowing = UrlGuard(["127.0.0.1", "Receiver.Internal.", "[::1]"], DNS)
    assert allowing.check("http://127.0.0.1:8080/hook").allow_listed
    assert allowing.check("http://127.1:8080/hook").allow_listed  # the same address
    assert allowing.check("http://receiver.internal/hook").allow_listed
    assert allowing.check("http://[::1]/hook").allow_listed
    for refused in ("http://127.0.0.2/hook", "http://localhost/hook", "http://10.0.0.1/"):
        with pytest.raises(UrlNotAllowedError):
            allowing.check(refused)
    with pytest.raises(UrlNotAllowedError):
        allowing.check("ftp://127.0.0.1/hook")


def test_a_name_that_does_not_resolve_passes_registration_but_not_delivery() -> None:
    assert guard.check("https://not-yet.example.com/", must_resolve=False).addresses == ()
    with pytest.raises(UrlNotAllowedError, match="does not resolve"):
        guard.check("https://not-yet.example.com/")


def test_the_refusal_says_why() -> None:
    with pytest.raises(UrlNotAllowedError, match="link-local"):
        guard.check("http://169.254.169.254/")
    with pytest.raises(UrlNotAllowedError, match="resolves to 10.0.0.5"):
        guard.check("http://rebind.example.com/")
    with pytest.raises(UrlNotAllowedError, match="user info"):
        guard.check("http://a@hooks.example.com/")


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("0xA9.0xFE.0xA9.0xFE".lower(), "169.254.169.254"),
    ],
)
def test_numeric_hosts_read_as_inet_aton_reads_them(spelling: str, address: str) -> None:
    assert str(parse_ipv4_any_spelling(spelling)) == address


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://Hooks.Example.com/in", "https://hooks.example.com/in"),
        ("https://hooks.example.com/in", "https://hooks.example.com:443/in"),
        ("https://hooks.example.com/in", "https://hooks.example.com/in/"),
        ("https://hooks.example.com/in", "https://hooks.example.com/in?utm=1"),
        ("https://hooks.example.com/in", "HTTPS://hooks.example.com./in#top"),
        ("http://hooks.example.com", "http://hooks.example.com/"),
    ],
)
def test_urls_differing_only_in_spelling_are_the_same_webhook(a: str, b: str) -> None:
    assert normalised_url(a) == normalised_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://hooks.example.com/in", "http://hooks.example.com/in"),
        ("https://hooks.example.com/in", "https://hooks.example.com:8443/in"),
        ("https://hooks.example.com/in", "https://hooks.example.com/IN"),
        ("https://hooks.example.com/a", "https://other.example.com/a"),
    ],
)
def test_different_destinations_are_different_webhooks(a: str, b: str) -> None:
    assert normalised_url(a) != normalised_url(b)
