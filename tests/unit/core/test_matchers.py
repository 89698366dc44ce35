from __future__ import annotations

import ipaddress
import re

import attr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_base_cs_url.core import (
    MATCHER_NAMES,
    AddressMatcher,
    AllOf,
    ClientIpMatcher,
    LocalpartMatcher,
    LoginContext,
    LoginTypeMatcher,
    MediumMatcher,
    UserIdMatcher,
    parse_match,
)


def m(raw: dict[str, object]) -> AllOf:
    return parse_match(raw, "rules[0].match")


def test_matcher_names() -> None:
    assert MATCHER_NAMES == (
        "address",
        "client_ip",
        "localpart",
        "login_type",
        "medium",
        "user_id",
    )


class TestUserId:
    matcher = UserIdMatcher(re.compile(r"@.*:eu\.example"))

    def test_matches_whole_user_id(self) -> None:
        assert self.matcher.matches(LoginContext(user_id="@alice:eu.example"))

    def test_is_full_match_not_search(self) -> None:
        assert not self.matcher.matches(LoginContext(user_id="@alice:eu.example.evil"))
        assert not UserIdMatcher(re.compile("alice")).matches(LoginContext(user_id="@alice:hs"))

    def test_negative(self) -> None:
        assert not self.matcher.matches(LoginContext(user_id="@alice:us.example"))

    def test_missing_user_id_does_not_match(self) -> None:
        assert not self.matcher.matches(LoginContext(localpart="alice"))
        assert not UserIdMatcher(re.compile(".*")).matches(LoginContext())

    def test_parsed(self) -> None:
        assert m({"user_id": "@.*:eu\\.example"}).matches(LoginContext(user_id="@a:eu.example"))


class TestLocalpart:
    matcher = LocalpartMatcher(re.compile(r"eu-.*"))

    def test_matches_explicit_localpart(self) -> None:
        assert self.matcher.matches(LoginContext(localpart="eu-alice"))

    def test_derived_from_user_id(self) -> None:
        assert self.matcher.matches(LoginContext(user_id="@eu-alice:hs"))
        assert not self.matcher.matches(LoginContext(user_id="@us-alice:hs"))

    def test_explicit_localpart_wins_over_user_id(self) -> None:
        assert not self.matcher.matches(LoginContext(user_id="@eu-alice:hs", localpart="bob"))

    def test_is_full_match_not_search(self) -> None:
        assert not self.matcher.matches(LoginContext(localpart="x-eu-alice"))
        assert not LocalpartMatcher(re.compile("eu")).matches(LoginContext(localpart="eu-a"))

    def test_missing_or_underivable_does_not_match(self) -> None:
        assert not self.matcher.matches(LoginContext())
        assert not LocalpartMatcher(re.compile(".*")).matches(LoginContext(user_id="eu-a"))


class TestLoginType:
    def test_single_string(self) -> None:
        matcher = m({"login_type": "m.login.sso"})
        assert matcher.matches(LoginContext(login_type="m.login.sso"))
        assert not matcher.matches(LoginContext(login_type="m.login.password"))

    def test_list(self) -> None:
        matcher = m({"login_type": ["m.login.sso", "m.login.token"]})
        assert matcher.matches(LoginContext(login_type="m.login.token"))
        assert matcher.matches(LoginContext(login_type="m.login.sso"))
        assert not matcher.matches(LoginContext(login_type="m.login.password"))

    def test_exact_equality_only(self) -> None:
        matcher = LoginTypeMatcher(frozenset({"m.login.sso"}))
        for other in ("m.login.ss", "m.login.sso2", "M.LOGIN.SSO", "m.login.*", ""):
            assert not matcher.matches(LoginContext(login_type=other))

    def test_missing_does_not_match(self) -> None:
        assert not m({"login_type": "m.login.sso"}).matches(LoginContext())


class TestClientIp:
    matcher = m({"client_ip": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]})

    @pytest.mark.parametrize(
        "ip",
        [
            "10.0.0.0",
            "10.1.2.3",
            "10.255.255.255",
            "2001:db8::1",
            "2001:db8:ffff::",
            "192.0.2.7",
            "::ffff:10.1.2.3",
            "::ffff:192.0.2.7",
        ],
    )
    def test_inside(self, ip: str) -> None:
        assert self.matcher.matches(LoginContext(client_ip=ip))

    @pytest.mark.parametrize(
        "ip",
        [
            "11.0.0.1",
            "9.255.255.255",
            "192.0.2.8",
            "2001:db9::1",
            "::1",
            "::ffff:11.1.2.3",
            "::10.1.2.3",  # IPv4-compatible, not IPv4-mapped
            "2002:a01:203::",  # 6to4 of 10.1.2.3 is not that address
        ],
    )
    def test_outside(self, ip: str) -> None:
        assert not self.matcher.matches(LoginContext(client_ip=ip))

    @pytest.mark.parametrize(
        "ip",
        ["", "not-an-ip", "10.1.2", "10.1.2.3:8080", "[2001:db8::1]", "10.0.0.0/8", " 10.1.2.3"],
    )
    def test_unparsable_does_not_match(self, ip: str) -> None:
        assert not self.matcher.matches(LoginContext(client_ip=ip))

    def test_missing_does_not_match(self) -> None:
        assert not self.matcher.matches(LoginContext(user_id="@a:b"))

    def test_bare_ip_is_a_single_host(self) -> None:
        assert m({"client_ip": "192.0.2.7"}) == AllOf(
            (ClientIpMatcher((ipaddress.ip_network("192.0.2.7/32"),)),)
        )
        v6 = m({"client_ip": ["2001:db8::1"]})
        assert v6.matches(LoginContext(client_ip="2001:db8::1"))
        assert not v6.matches(LoginContext(client_ip="2001:db8::2"))

    def test_ipv6_network_with_mapped_prefix_matches_mapped_address(self) -> None:
        matcher = m({"client_ip": "::ffff:0:0/96"})
        assert matcher.matches(LoginContext(client_ip="::ffff:10.1.2.3"))

    def test_ipv6_scope_id(self) -> None:
        assert m({"client_ip": "fe80::/10"}).matches(LoginContext(client_ip="fe80::1%eth0"))


class TestThirdParty:
    def test_address_full_match(self) -> None:
        matcher = AddressMatcher(re.compile(r".*@eu\.example"))
        assert matcher.matches(LoginContext(address="alice@eu.example"))
        assert not matcher.matches(LoginContext(address="alice@eu.example.com"))
        assert not matcher.matches(LoginContext(address="alice@us.example"))
        assert not matcher.matches(LoginContext(medium="email"))

    def test_medium_exact(self) -> None:
        matcher = MediumMatcher("email")
        assert matcher.matches(LoginContext(medium="email"))
        assert not matcher.matches(LoginContext(medium="msisdn"))
        assert not matcher.matches(LoginContext(medium="Email"))
        assert not matcher.matches(LoginContext(address="a@b"))

    def test_parsed(self) -> None:
        matcher = m({"medium": "msisdn", "address": r"44\d+"})
        assert matcher.matches(LoginContext(medium="msisdn", address="447700900123"))
        assert not matcher.matches(LoginContext(medium="email", address="447700900123"))
        assert not matcher.matches(LoginContext(medium="msisdn", address="+447700900123"))


class TestAllOf:
    def test_empty_and_missing_match_everything(self) -> None:
        raws: list[dict[str, object] | None] = [None, {}]
        for raw in raws:
            matcher = parse_match(raw, "x")
            assert matcher == AllOf()
            assert matcher.matches(LoginContext())
            assert matcher.matches(LoginContext(user_id="@a:b", client_ip="1.2.3.4"))

    def test_and_semantics(self) -> None:
        matcher = m({"localpart": "a.*", "login_type": "m.login.password", "client_ip": "::/0"})
        full = LoginContext(localpart="alice", login_type="m.login.password", client_ip="::1")
        assert matcher.matches(full)
        assert not matcher.matches(attr.evolve(full, localpart="bob"))
        assert not matcher.matches(attr.evolve(full, login_type="m.login.sso"))
        assert not matcher.matches(attr.evolve(full, client_ip="127.0.0.1"))
        assert not matcher.matches(attr.evolve(full, client_ip=None))


@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.ip_addresses(v=4).map(lambda ip: f"::ffff:{ip}"),
        st.text(max_size=20),
    ),
    st.lists(st.ip_addresses().map(lambda ip: f"{ip}/{16 if ip.version == 4 else 64}"), max_size=3),
)
def test_client_ip_matching_agrees_with_ipaddress(client_ip: str, cidrs: list[str]) -> None:
    networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        expected = False
    else:
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        expected = any(c in n for c in candidates for n in networks)
    assert ClientIpMatcher(networks).matches(LoginContext(client_ip=client_ip)) == expected
