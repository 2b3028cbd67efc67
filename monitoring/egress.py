"""Outbound HTTP for webhooks, behind an egress policy: no loopback, link-local, private, multicast or
reserved addresses (cloud metadata at 169.254.169.254 included), checked for every address a name
resolves to, on the address actually connected to, and again for every redirect.

WEBHOOK_ALLOWED_HOSTS lists host names an operator trusts anyway (an internal chat relay, say); they
skip the address check. Everything else must resolve to public addresses only.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from django.conf import settings

MAX_REDIRECTS = 3
TIMEOUT_SECONDS = 10


class EgressDenied(Exception):
    """The URL (or a redirect) points somewhere the policy forbids; the message says why."""


@dataclass
class Response:
    status: int
    body: bytes
    url: str


def _forbidden(address: str) -> str | None:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    for attribute, what in (
        ("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_private", "private"),
        ("is_multicast", "multicast"), ("is_reserved", "reserved"), ("is_unspecified", "unspecified"),
    ):  # fmt: skip
        if getattr(ip, attribute):
            return what
    if not ip.is_global:  # shared address space (100.64/10, cloud metadata at 100.100.100.200) and the like
        return "non-public"
    return None


def resolve(url: str) -> tuple[urllib.parse.SplitResult, str]:
    """The URL's parts and the one address to connect to, once the policy allows them."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a bad port or bracket
        raise EgressDenied(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressDenied(f"only http and https URLs with a host are allowed: {url!r}")
    if parts.username or parts.password:
        raise EgressDenied("credentials in the URL are not allowed; use the webhook secret")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise EgressDenied(f"{parts.hostname} does not resolve: {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    if parts.hostname.lower() not in {h.lower() for h in settings.WEBHOOK_ALLOWED_HOSTS}:
        for address in addresses:
            why = _forbidden(address)
            if why:
                raise EgressDenied(f"{parts.hostname} resolves to {address}, a {why} address")
    return parts, addresses[0]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address, verifying the certificate for the URL's host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
    """POST `body` to `url`, following at most MAX_REDIRECTS redirects, each checked by the policy."""
    for _ in range(MAX_REDIRECTS + 1):
        parts, address = resolve(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = _PinnedHTTPSConnection(parts.hostname or "", address, port, TIMEOUT_SECONDS)
        else:
            connection = http.client.HTTPConnection(address, port, timeout=TIMEOUT_SECONDS)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            connection.request("POST", path, body, {**headers, "Host": parts.netloc.rsplit("@", 1)[-1]})
            response = connection.getresponse()
            content = response.read(64 * 1024)
        finally:
            connection.close()
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            url = urllib.parse.urljoin(url, response.getheader("Location") or "")
            continue
        return Response(response.status, content, url)
    raise EgressDenied(f"more than {MAX_REDIRECTS} redirects")
