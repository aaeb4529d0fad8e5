"""SSRF policy for REST sources: which addresses a request may reach.

The host is resolved once per request, every resolved address is checked, and the
connection goes to the checked address (the URL's host is kept for ``Host`` and TLS SNI),
so a DNS answer that changes between check and connect cannot redirect it. Redirects are
requests too: each hop passes through the same transport and is checked again.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from .config import Resolver
from .errors import AddressRefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: cloud metadata endpoints that are not covered by the non-global ranges
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "192.0.0.192",
))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read the way ``inet_aton`` reads it (``127.1``, ``0x7f.0.0.1``, ``017700000001``,
    ``2130706433``), or None when it is not such a literal."""
    parts = host.rstrip(".").split(".") if host else []
    if not 1 <= len(parts) <= 4 or not all(_LEGACY_PART.match(p) for p in parts):
        return None
    values = []
    for p in parts:
        if p[:2] in ("0x", "0X"):
            values.append(int(p[2:] or "0", 16))
        elif p.startswith("0") and len(p) > 1:
            values.append(int(p[1:], 8))
        else:
            values.append(int(p))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << 8 * (4 - len(head)) | last
    return ipaddress.IPv4Address(number)


def parse_literal(host: str) -> IPAddress | None:
    """An IP literal in any spelling (bracketed IPv6, zone ids, legacy IPv4), else None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return legacy_ipv4(text)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip))
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused by default (a short reason), or None if it is public."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = refusal(inner)
        return f"{reason} (embedded in {ip})" if reason else None
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_private or not ip.is_global:
        return "a private or reserved address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Default: public addresses only. ``allow_private`` opens everything; ``allowlist``
    opens named hosts (exact, case-insensitive) and networks (CIDRs or single addresses)."""

    allow_private: bool = False
    allowlist: tuple[str, ...] = ()

    def _networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        nets = []
        for entry in self.allowlist:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return nets

    def _hosts(self) -> set[str]:
        return {e.lower().rstrip(".") for e in self.allowlist if parse_literal(e) is None
                and "/" not in e}

    def check(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Raise DF-1105 unless every address ``host`` resolved to may be reached."""
        if self.allow_private or host.lower().rstrip(".") in self._hosts():
            return
        nets = self._networks()
        for ip in addresses:
            reason = refusal(ip)
            if reason is None or any(ip in n for n in nets if n.version == ip.version):
                continue
            raise AddressRefusedError(
                f"refusing to connect to {host!r:.100}: it resolves to {ip}, {reason}. "
                "Nothing was sent.",
                field="url",
                fix="pass allow_private=True or allowlist=(host or CIDR,) in the source "
                "config for an on-premises or test server.")


async def resolve(host: str, port: int, resolver: Resolver | None = None) -> list[IPAddress]:
    """Every address ``host`` resolves to (literals in any spelling need no lookup)."""
    literal = parse_literal(host)
    if literal is not None:
        return [literal]
    if resolver is not None:
        found = [ipaddress.ip_address(a) for a in resolver(host, port)]
    else:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if ip not in found:
                found.append(ip)
    if not found:
        raise AddressRefusedError(f"{host!r:.100} did not resolve to any address.", field="url")
    return found


class PinnedTransport(httpx.AsyncBaseTransport):
    """Resolves, checks and pins each request's address before anything is sent."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver | None = None,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpx.AsyncHTTPTransport()
        #: (host, address) of each request sent, newest last (diagnostics and tests)
        self.connected: collections.deque[tuple[str, str]] = collections.deque(maxlen=64)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await resolve(host, port, self.resolver)
        self.policy.check(host, addresses)
        pinned = addresses[0]
        if parse_literal(host) is None or str(pinned) != host:
            ip_host = str(pinned)
            request.url = url.copy_with(host=ip_host)
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        self.connected.append((host, str(pinned)))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

