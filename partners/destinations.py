"""Safe webhook destinations: where this service may connect on a customer's behalf.

`https` only unless WEBHOOK_ALLOW_HTTP; private, loopback and other non-global addresses
refused unless WEBHOOK_ALLOW_PRIVATE; link-local and cloud-metadata addresses refused
always. Checked at registration and again at every connection (a name may resolve
elsewhere by then: DNS rebinding), where the connection goes to the address checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiodns

from partners.errors import ErrorCode, Refused

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, the cloud metadata service among them
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS's IPv6 metadata service
)


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int


def parse(url: str, *, allow_http: bool) -> Destination:
    """The URL's destination, or 422 `unsafe_webhook_url` saying why."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused(ErrorCode.UNSAFE_WEBHOOK_URL, "Not a URL.") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused(ErrorCode.UNSAFE_WEBHOOK_URL, "The URL must be https://host/...")
    if parts.scheme == "http" and not allow_http:
        raise Refused(ErrorCode.UNSAFE_WEBHOOK_URL, "Webhooks are delivered over https only.")
    if parts.username or parts.password:
        raise Refused(ErrorCode.UNSAFE_WEBHOOK_URL, "Credentials in the URL are not accepted; use the secret.")
    return Destination(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def url_key(url: str) -> str:
    """The URL as two endpoints on it would be compared: scheme and host in lower case,
    the default port and an empty path spelled out, the fragment (never sent) dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{ipaddress.ip_address(host).compressed}]" if _is_ip(host) else f"[{host}]"
    port = parts.port or (443 if scheme == "https" else 80)
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}:{port}{parts.path or '/'}{query}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, the local-use prefix
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, still routed by some stacks


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches through a translator or tunnel: mapped,
    NAT64 (both prefixes), 6to4, Teredo (its server and its client) and IPv4-compatible.
    Such an address passes `is_global` whatever IPv4 address it carries."""
    value = int(address)
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF)]
    if address in _NAT64_LOCAL:
        # RFC 6052 for a /48 prefix: the IPv4 address's first two bytes in bits 48-63,
        # its last two in bits 72-87 (bits 64-71 are the reserved "u" octet).
        return [ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | ((value >> 40) & 0xFFFF))]
    return []


def allowed(address: IpAddress, *, allow_private: bool) -> bool:
    """Whether a connection may go to `address`; an IPv6 address that carries an IPv4 one
    is judged as that IPv4 address is: that is where the connection ends up."""
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)):
        return all(allowed(inner, allow_private=allow_private) for inner in embedded)
    if any(address in network for network in _ALWAYS_REFUSED):
        return False
    return allow_private or address.is_global


# A name's resolution, every try included, takes at most this long: a destination whose
# DNS stalls fails its attempt (retried with backoff like any failed attempt) instead of
# holding anything else up.
RESOLVE_TIMEOUT_SECONDS = 5.0
_RESOLVERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiodns.DNSResolver] = weakref.WeakKeyDictionary()


def _resolver() -> aiodns.DNSResolver:
    """One resolver per event loop (c-ares on the loop itself: no thread of the loop's
    small default pool, which SMTP and PostgreSQL reconnects share, waits on a name)."""
    loop = asyncio.get_running_loop()
    if (resolver := _RESOLVERS.get(loop)) is None:
        resolver = _RESOLVERS[loop] = aiodns.DNSResolver(loop=loop, timeout=2.0, tries=2)
    return resolver


async def resolve(destination: Destination, *, allow_private: bool) -> list[IpAddress]:
    """Every address the host resolves to, all of them allowed; else 422 saying why. The
    refusal never names an address a name resolved to: the service's own network (an
    internal name, the database's address) is nobody's business who asks."""
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            found = await _resolver().getaddrinfo(destination.host, port=destination.port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise Refused(
            ErrorCode.UNSAFE_WEBHOOK_URL,
            f"{destination.host} did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} s.",
        ) from None
    except aiodns.error.DNSError:
        raise Refused(ErrorCode.UNSAFE_WEBHOOK_URL, f"{destination.host} does not resolve.") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(node.addr[0].decode()) for node in found.nodes))
    if not addresses or any(not allowed(a, allow_private=allow_private) for a in addresses):
        raise Refused(
            ErrorCode.UNSAFE_WEBHOOK_URL,
            f"{destination.host} resolves to an address webhooks may not reach: a private, loopback,"
            " link-local or other non-public one.",
        )
    return addresses
