"""Where a webhook may connect, as a pure rule: every IPv6 form that carries an IPv4
address is judged as that IPv4 address (the API-level refusals are in test_webhooks)."""

from __future__ import annotations

import ipaddress

import pytest

from partners import destinations
from partners.destinations import allowed

# 169.254.169.254 (the cloud metadata service), 10.0.0.1 and 8.8.8.8 in each form.
FORMS = {
    "plain": ("169.254.169.254", "10.0.0.1", "8.8.8.8"),
    "mapped": ("::ffff:a9fe:a9fe", "::ffff:a00:1", "::ffff:808:808"),
    "nat64": ("64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b::808:808"),
    "nat64-local": ("64:ff9b:1:a9fe:a9:fe00::", "64:ff9b:1:a00:0:100::", "64:ff9b:1:808:8:800::"),
    "6to4": ("2002:a9fe:a9fe::1", "2002:a00:1::1", "2002:808:808::1"),
    # Teredo's client address is stored XOR-ed with ones; its server here is public.
    "teredo": (
        "2001:0:4136:e378:8000:63bf:5601:5601",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
    ),
    "ipv4-compatible": ("::a9fe:a9fe", "::a00:1", "::808:808"),
}


@pytest.mark.parametrize("form", FORMS)
def test_an_embedded_ipv4_address_is_judged_as_the_plain_one(form: str) -> None:
    metadata, private, public = (ipaddress.ip_address(a) for a in FORMS[form])
    assert not allowed(metadata, allow_private=True), "link-local: never"
    assert not allowed(private, allow_private=False)
    assert allowed(private, allow_private=True)
    assert allowed(public, allow_private=False)


def test_plain_ipv6_addresses_keep_their_own_judgement() -> None:
    assert allowed(ipaddress.ip_address("2606:4700:4700::1111"), allow_private=False)
    assert not allowed(ipaddress.ip_address("fe80::1"), allow_private=True)
    assert not allowed(ipaddress.ip_address("::1"), allow_private=False)
    assert not allowed(ipaddress.ip_address("fd12::1"), allow_private=False)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://Hooks.Example/in", "https://hooks.example:443/in#frag"),
        ("https://hooks.example", "https://hooks.example/"),
        ("https://[::1]:8443/x", "https://[0:0::1]:8443/x"),
    ],
)
def test_two_spellings_of_one_url_have_one_key(a: str, b: str) -> None:
    assert destinations.url_key(a) == destinations.url_key(b)


def test_another_path_query_or_port_is_another_url() -> None:
    keys = {
        destinations.url_key(u)
        for u in ("https://h.example/a", "https://h.example/b", "https://h.example/a?x=1", "https://h.example:8443/a")
    }
    assert len(keys) == 4
