"""R6 as a pure rule: which addresses belong to a partner's registered domains."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partners.rules import email_domain_is_registered, mask_email, normalize_domain, normalize_email
from partners.texts import CATALOG, Locale

REGISTERED = [normalize_domain("partner.com"), normalize_domain("bücher.example")]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("ana@partner.com", True),
        ("Ana@PARTNER.COM", True),
        ("ana+portal@partner.com", True),
        ("ana@partner.com.", True),
        ("ana@bücher.example", True),
        ("ana@xn--bcher-kva.example", True),
        ("ana@sub.partner.com", False),
        ("x@partner.com.evil.com", False),
        ("x@evilpartner.com", False),
        ("x@partner.co", False),
        ("x@p\u0430rtner.com", False),  # a Cyrillic "a": a look-alike, not the registered domain
        ("x@partner.com@evil.com", None),
        ('"x@partner.com"@evil.com', None),
        ('"x"@partner.com', None),
        ("x@[127.0.0.1]", None),
        ("Partner <x@partner.com>", None),
        ("x@partner.com\r\nBcc: y@evil.com", None),
        ("x\x00@partner.com", None),
        ("joão@partner.com", None),
        ("", None),
    ],
)
def test_domain_table(address: str, allowed: bool | None) -> None:
    """None: not an address we accept at all (invalid_input at the API)."""
    if allowed is None:
        with pytest.raises(ValueError):
            normalize_email(address)
        return
    assert email_domain_is_registered(normalize_email(address), REGISTERED) is allowed


def test_domains_are_normalised_once() -> None:
    assert normalize_domain(" Partner.COM. ") == "partner.com"
    assert normalize_domain("bücher.example") == "xn--bcher-kva.example"
    for bad in ("", "a@b.com", "not a domain", "-x.com", "x..com", "partner.com\n"):
        with pytest.raises(ValueError):
            normalize_domain(bad)


# DNS labels; "ab--" prefixes are reserved for IDNA and refused, so no double dash.
_label = st.from_regex(r"[a-z0-9]([a-z0-9]|-(?!-)){0,10}[a-z0-9]?", fullmatch=True).filter(
    lambda s: not s.endswith("-")
)
_domain = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_label, min_size=1, max_size=3),
    st.sampled_from(["com", "example", "com.br"]),
)
_text = st.text(min_size=1, max_size=40)


@given(local=_text, domain=st.one_of(_domain, _text), registered=st.lists(_domain, min_size=1, max_size=3))
def test_no_address_outside_the_registered_domains_is_accepted(local: str, domain: str, registered: list[str]) -> None:
    """Whatever is typed: accepted only if the normalised domain is exactly a registered one."""
    domains = [normalize_domain(d) for d in registered]
    try:
        email = normalize_email(f"{local}@{domain}")
    except ValueError:
        return
    if email_domain_is_registered(email, domains):
        assert email.address.rsplit("@", 1)[1] in domains
        assert email.domain == normalize_domain(domain)


@given(registered=_domain, prefix=_label, suffix=_label)
def test_prefixed_suffixed_and_sub_domains_are_never_accepted(registered: str, prefix: str, suffix: str) -> None:
    domains = [normalize_domain(registered)]
    for trick in (f"{prefix}{registered}", f"{prefix}.{registered}", f"{registered}.{suffix}.com"):
        assert not email_domain_is_registered(normalize_email(f"ana@{trick}"), domains)


def test_masking_keeps_the_domain_only() -> None:
    assert mask_email("alice@globex.example") == "a…@globex.example"


def test_both_locales_say_everything() -> None:
    assert set(CATALOG[Locale.PT_BR]) == set(CATALOG[Locale.EN])
