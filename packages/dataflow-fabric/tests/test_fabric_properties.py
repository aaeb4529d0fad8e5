"""Property tests: address checks in every spelling, redirects to private addresses, and
query-parameter parsing."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
from collections.abc import Iterator

import httpx
import pytest
from fabric_support import Route, Upstream, _start_upstream
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dataflow_fabric.errors import AddressRefusedError, ParameterError
from dataflow_fabric.params import Param, cache_key, parse_query
from dataflow_fabric.ssrf import AddressPolicy, PinnedTransport, legacy_ipv4, parse_literal, refusal

PRIVATE_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
              "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]
PRIVATE_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8"]


def in_network(cidr: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    net = ipaddress.ip_network(cidr)
    return st.integers(0, net.num_addresses - 1).map(lambda i: net[i])


private_v4 = st.one_of(*[in_network(c) for c in PRIVATE_V4])
private_v6 = st.one_of(*[in_network(c) for c in PRIVATE_V6])
public_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(
    lambda ip: ip.is_global and not ip.is_multicast)


def spellings(ip: ipaddress.IPv4Address) -> list[str]:
    """Ways to write one IPv4 address that resolvers and URL parsers accept."""
    n = int(ip)
    a, b, c, d = ip.packed
    return [
        str(ip), str(n), "0" + oct(n)[2:], hex(n),
        ".".join("0" + oct(x)[2:] if x else "0" for x in (a, b, c, d)),
        ".".join(hex(x) for x in (a, b, c, d)),
        f"{a}.{(b << 16) | (c << 8) | d}", f"{a}.{b}.{(c << 8) | d}",
        f"::ffff:{ip}", f"[::ffff:{ip}]", f"::ffff:{(n >> 16):x}:{(n & 0xFFFF):x}",
        f"64:ff9b::{ip}", f"2002:{(n >> 16):x}:{(n & 0xFFFF):x}::1",
    ]


@given(private_v4)
def test_private_ipv4_is_refused_in_every_spelling(ip: ipaddress.IPv4Address) -> None:
    for spelling in spellings(ip):
        literal = parse_literal(spelling)
        assert literal is not None, spelling
        with pytest.raises(AddressRefusedError):
            AddressPolicy().check(spelling, [literal])


@given(public_v4)
def test_public_ipv4_is_allowed_in_every_spelling(ip: ipaddress.IPv4Address) -> None:
    assume(refusal(ip) is None)
    for spelling in spellings(ip)[:10]:  # not the NAT64 / 6to4 forms: those ranges are special
        literal = parse_literal(spelling)
        assert literal is not None and refusal(literal) is None, spelling


@given(private_v6)
def test_private_ipv6_is_refused(ip: ipaddress.IPv6Address) -> None:
    for spelling in (str(ip), ip.exploded, f"[{ip}]", f"{ip}%eth0"):
        literal = parse_literal(spelling)
        assert literal is not None
        assert refusal(literal) is not None


@given(st.lists(st.one_of(st.integers(0, 255).map(str), st.integers(0, 255).map(lambda x: "0" + oct(x)[2:]),
                          st.integers(0, 2**32 - 1).map(hex), st.integers(0, 2**24).map(str)),
                min_size=1, max_size=4).map(".".join))
def test_legacy_ipv4_reads_like_inet_aton(text: str) -> None:
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    assert legacy_ipv4(text) == expected


@pytest.fixture(scope="module")
def redirector() -> Iterator[Upstream]:
    up, server = _start_upstream("127.0.0.1")
    yield up
    server.shutdown()
    server.server_close()


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(private_v4.filter(lambda ip: ip not in ipaddress.ip_network("127.0.0.1/32")), st.data())
def test_redirects_to_private_addresses_are_refused(redirector: Upstream, ip: ipaddress.IPv4Address,
                                                    data: st.DataObject) -> None:
    spelling = data.draw(st.sampled_from(spellings(ip)[:8]))
    redirector.routes["/go"] = Route(302, headers={"Location": f"http://{spelling}:9/"})

    async def follow() -> None:
        transport = PinnedTransport(AddressPolicy(allowlist=("127.0.0.1/32",)))
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            try:
                await client.get(f"{redirector.url}/go")
            except (AddressRefusedError, httpx.InvalidURL, httpx.RemoteProtocolError):  # or not a URL
                assert [a for _, a in transport.connected] == ["127.0.0.1"]
                return
            raise AssertionError(f"redirect to {spelling} was followed")

    asyncio.run(follow())


# --- query parameters -------------------------------------------------------------------
INT = Param("n", int, many=False, optional=False, default=0)
FLOAT = Param("x", float, many=False, optional=False, default=0.0)
BOOL = Param("flag", bool, many=False, optional=False, default=False)
TEXT = Param("q", str, many=False, optional=False, default="")
TAGS = Param("tag", str, many=True, optional=False, default=[])


@given(st.integers(-(10**18), 10**18))
def test_ints_round_trip(n: int) -> None:
    assert parse_query([INT], [("n", str(n))]) == {"n": n}


@given(st.text(max_size=30))
def test_anything_that_is_not_an_int_is_a_400_naming_the_parameter(raw: str) -> None:
    assume(not raw.strip("+-").isascii() or not raw.lstrip("+-").isdigit()
           or raw.count("+") + raw.count("-") > 1 or raw[:1] not in "+-0123456789")
    try:
        value = parse_query([INT], [("n", raw)])
    except ParameterError as exc:
        assert exc.field == "n" and exc.code == "DF-1102"
    else:
        assert str(value["n"]) == raw.lstrip("+") or int(raw) == value["n"]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_round_trip(x: float) -> None:
    assert parse_query([FLOAT], [("x", repr(x))]) == {"x": x}


@given(st.sampled_from(["nan", "inf", "-inf", "NaN", "1e999", "1_0", "", "0x10"]))
def test_non_finite_or_odd_floats_are_refused(raw: str) -> None:
    with pytest.raises(ParameterError) as err:
        parse_query([FLOAT], [("x", raw)])
    assert err.value.field == "x"
    assert not math.isnan(0.0)


@given(st.booleans(), st.sampled_from([str, lambda b: str(b).lower(), lambda b: "1" if b else "0",
                                       lambda b: "yes" if b else "no"]))
def test_bools_parse_from_common_spellings(flag: bool, spell: object) -> None:
    assert parse_query([BOOL], [("flag", spell(flag))]) == {"flag": flag}  # type: ignore[operator]


@given(st.lists(st.text(max_size=10), max_size=5), st.text(max_size=20))
def test_lists_collect_repeats_and_strings_pass_through(tags: list[str], q: str) -> None:
    items = [("q", q)] + [("tag", t) for t in tags]
    parsed = parse_query([TEXT, TAGS], items)
    assert parsed == {"q": q, "tag": tags or []}
    assert cache_key(parsed) == cache_key(dict(reversed(list(parsed.items()))))


@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in ("q", "n")))
def test_unknown_names_and_repeated_scalars_are_refused(name: str) -> None:
    with pytest.raises(ParameterError) as err:
        parse_query([TEXT, INT], [(name, "1")])
    assert err.value.field == name[:60]
    with pytest.raises(ParameterError) as again:
        parse_query([TEXT, INT], [("n", "1"), ("n", "2")])
    assert again.value.field == "n"
