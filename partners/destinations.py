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
from dataclasses import dataclass
from urllib.parse import urlsplit

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


def allowed(address: IpAddress, *, allow_private: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _ALWAYS_REFUSED):
        return False
    return allow_private or address.is_global


async def resolve(destination: Destination, *, allow_private: bool) -> list[IpAddress]:
    """Every address the host resolves to, all of them allowed; else 422 saying which."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            destination.host, destination.port, type=socket.SOCK_STREAM
        )
    except OSError:
        raise Refused(ErrorCode.UNSAFE_WEBHOOK_URL, f"{destination.host} does not resolve.") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    refused = [a for a in addresses if not allowed(a, allow_private=allow_private)]
    if refused or not addresses:
        raise Refused(
            ErrorCode.UNSAFE_WEBHOOK_URL,
            f"{destination.host} resolves to an address webhooks may not reach ({refused[0] if refused else '-'}).",
        )
    return addresses
