"""Digest authentication: published examples, challenge handling and the answer life cycle."""

from __future__ import annotations

from collections.abc import Callable
import hashlib
from itertools import count
from pathlib import Path
import random

import pytest

from custom_components.sip_profiles.sip.auth import (
    Algorithm,
    Challenge,
    ChallengeOutcome,
    Credentials,
    DigestClient,
    mask_authorization,
    parse_challenges,
)
from custom_components.sip_profiles.sip.errors import LocalProtocolError, RemoteProtocolError
from custom_components.sip_profiles.sip.grammar import param, parse_params

RFC4475 = Path("/work/shared/conformance/rfc4475")

# RFC 2617 §3.5
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

# RFC 7616 §3.9.1: the same nonce offered with SHA-256 and with MD5.
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def directives(value: str) -> dict[str, str | None]:
    """The directives of one Digest credentials value, read with the shared grammar."""
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    params = parse_params(rest, ",")
    assert len({name for name, _ in params}) == len(params)
    return dict(params)


def only_header(
    client: DigestClient, method: str = "REGISTER", uri: str = "sip:example.com", body: bytes = b""
) -> tuple[str, dict[str, str | None]]:
    headers = client.authorization_headers(method, uri, body)
    assert len(headers) == 1
    name, value = headers[0]
    return name, directives(value)


def cnonces(prefix: str = "cn") -> Callable[[], str]:
    numbers = count(1)
    return lambda: f"{prefix}{next(numbers)}"


def hex_hash(name: str, data: str | bytes) -> str:
    return hashlib.new(name, data.encode() if isinstance(data, str) else data).hexdigest()


def challenge(realm: str = "example.com", nonce: str = "n1", extra: str = ', qop="auth"') -> str:
    return f'Digest realm="{realm}", nonce="{nonce}"{extra}'


# Published examples ------------------------------------------------------------------------


def test_rfc2617_md5_example() -> None:
    client = DigestClient(
        [Credentials("Mufasa", "Circle Of Life")], cnonce_factory=lambda: "0a4f113b"
    )
    assert client.handle_challenge(401, [RFC2617_CHALLENGE]) is ChallengeOutcome.ANSWERED
    name, answer = only_header(client, "GET", "/dir/index.html")
    assert name == "Authorization"
    assert answer == {
        "username": "Mufasa",
        "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html",
        "response": "6629fae49393a05397450978507c4ef1",
        "algorithm": "MD5",
        "cnonce": "0a4f113b",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
        "qop": "auth",
        "nc": "00000001",
    }


@pytest.mark.parametrize(
    ("offered", "algorithm", "response"),
    [
        (["MD5"], "MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            ["SHA-256"],
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
        # The RFC's own 401 offers both; the stronger wins whatever the order.
        (
            ["MD5", "SHA-256"],
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ],
)
def test_rfc7616_examples(offered: list[str], algorithm: str, response: str) -> None:
    client = DigestClient(
        [Credentials("Mufasa", "Circle of Life")], cnonce_factory=lambda: RFC7616_CNONCE
    )
    values = [rfc7616_challenge(name) for name in offered]
    assert client.handle_challenge(401, values) is ChallengeOutcome.ANSWERED
    _, answer = only_header(client, "GET", "/dir/index.html")
    assert answer["algorithm"] == algorithm
    assert answer["response"] == response
    assert answer["opaque"] == RFC7616_OPAQUE
    assert answer["cnonce"] == RFC7616_CNONCE


def test_several_challenges_in_one_value_are_split() -> None:
    value = ", ".join([rfc7616_challenge("MD5"), rfc7616_challenge("SHA-256")])
    parsed = parse_challenges(value, proxy=False)
    assert [item.algorithm for item in parsed] == [Algorithm.MD5, Algorithm.SHA_256]
    assert parsed[1] == Challenge(
        realm="http-auth@example.org",
        nonce=RFC7616_NONCE,
        algorithm=Algorithm.SHA_256,
        qop=frozenset({"auth", "auth-int"}),
        opaque=RFC7616_OPAQUE,
        stale=False,
        proxy=False,
    )


@pytest.mark.parametrize(
    "value",
    [
        rfc7616_challenge("SHA-256"),
        RFC2617_CHALLENGE,
        'DIGEST  realm = "a \\"b\\" c" ,nonce=n1,stale=TRUE,algorithm=md5-sess, opaque=""',
        'digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r", nonce="n", realm="s"',
    ],
)
def test_one_digest_challenge_reads_as_it_does_among_others(value: str) -> None:
    # A lone Digest challenge is read in one pass; among other schemes, item by item.
    among_others = f'Basic realm="x", {value}, NTLM'
    try:
        alone = parse_challenges(value, proxy=False)
    except RemoteProtocolError:
        with pytest.raises(RemoteProtocolError):
            parse_challenges(among_others, proxy=False)
        return
    assert alone == parse_challenges(among_others, proxy=False)


# Formulas computed independently -----------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [("MD5-sess", "md5"), ("SHA-256-sess", "sha256"), ("SHA-512-256-sess", "sha512_256")],
)
def test_sess_variants(algorithm: str, hash_name: str) -> None:
    # HA1 = H(H(username:realm:password):nonce:cnonce)
    # response = H(HA1:nonce:nc:cnonce:qop:H(method:uri))
    client = DigestClient([Credentials("alice", "s3cret")], cnonce_factory=cnonces())
    value = challenge(extra=f', qop="auth", algorithm={algorithm}')
    assert client.handle_challenge(401, [value]) is ChallengeOutcome.ANSWERED

    def expected(nc: str, cnonce: str) -> str:
        ha1 = hex_hash(hash_name, hex_hash(hash_name, "alice:example.com:s3cret") + f":n1:{cnonce}")
        ha2 = hex_hash(hash_name, "REGISTER:sip:example.com")
        return hex_hash(hash_name, f"{ha1}:n1:{nc}:{cnonce}:auth:{ha2}")

    _, first = only_header(client)
    assert first["algorithm"] == algorithm
    assert first["response"] == expected("00000001", "cn1")
    client.request_succeeded()
    # The session key stays the one of the first answer: the cnonce is kept for the nonce.
    _, second = only_header(client)
    assert (second["nc"], second["cnonce"]) == ("00000002", "cn1")
    assert second["response"] == expected("00000002", "cn1")


def test_hashes_kept_between_answers_follow_method_uri_and_nonce() -> None:
    # H(A1) and H(A2) are kept from one answer to the next; each answer must still hash
    # its own method, Request-URI and nonce, and a -sess key its own nonce and cnonce.
    ha1 = hex_hash("md5", "alice:example.com:s3cret")

    def expected(key: str, method: str, uri: str, nonce: str, nc: int, cnonce: str) -> str:
        ha2 = hex_hash("md5", f"{method}:{uri}")
        return hex_hash("md5", f"{key}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")

    client = DigestClient([Credentials("alice", "s3cret")], cnonce_factory=lambda: "c0ffee")
    client.handle_challenge(401, [challenge()])
    requests = [
        ("SUBSCRIBE", "sip:bob@example.com"),
        ("SUBSCRIBE", "sip:carol@example.com"),
        ("REGISTER", "sip:bob@example.com"),
    ] * 2
    for nc, (method, uri) in enumerate(requests, start=1):
        answer = only_header(client, method, uri)[1]
        assert answer["response"] == expected(ha1, method, uri, "n1", nc, "c0ffee")
        client.request_succeeded()
    client.handle_challenge(401, [challenge(nonce="n2")])
    answer = only_header(client)[1]
    assert answer["response"] == expected(ha1, "REGISTER", "sip:example.com", "n2", 1, "c0ffee")
    client.forget()
    client.handle_challenge(401, [challenge(realm="other.example", nonce="n3")])
    other_ha1 = hex_hash("md5", "alice:other.example:s3cret")
    answer = only_header(client)[1]
    assert answer["response"] == expected(
        other_ha1, "REGISTER", "sip:example.com", "n3", 1, "c0ffee"
    )

    sess = DigestClient([Credentials("alice", "s3cret")], cnonce_factory=cnonces())
    for nonce, cnonce in (("n1", "cn1"), ("n2", "cn2")):
        sess.forget()
        sess.handle_challenge(
            401, [challenge(nonce=nonce, extra=', qop="auth", algorithm=MD5-sess')]
        )
        key = hex_hash("md5", f"{ha1}:{nonce}:{cnonce}")
        answer = only_header(sess)[1]
        assert answer["response"] == expected(key, "REGISTER", "sip:example.com", nonce, 1, cnonce)


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [("MD5", "md5"), ("SHA-256", "sha256"), ("SHA-512-256", "sha512_256")],
)
def test_auth_int_hashes_the_body(algorithm: str, hash_name: str) -> None:
    # HA1 = H(username:realm:password); HA2 = H(method:uri:H(body))
    # response = H(HA1:nonce:nc:cnonce:auth-int:HA2)
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    client = DigestClient([Credentials("alice", "s3cret")], cnonce_factory=lambda: "c0ffee")
    value = challenge(extra=f', qop="auth-int", algorithm={algorithm}')
    assert client.handle_challenge(401, [value]) is ChallengeOutcome.ANSWERED
    _, answer = only_header(client, "INVITE", "sip:bob@example.com", body)
    ha1 = hex_hash(hash_name, "alice:example.com:s3cret")
    ha2 = hex_hash(hash_name, "INVITE:sip:bob@example.com:" + hex_hash(hash_name, body))
    assert answer["qop"] == "auth-int"
    assert answer["response"] == hex_hash(hash_name, f"{ha1}:n1:00000001:c0ffee:auth-int:{ha2}")


def test_auth_is_chosen_when_both_qops_are_offered() -> None:
    client = DigestClient([Credentials("alice", "s3cret")], cnonce_factory=lambda: "c")
    client.handle_challenge(401, [challenge(extra=', qop="auth-int,auth"')])
    _, answer = only_header(client, body=b"ignored")
    ha1 = hex_hash("md5", "alice:example.com:s3cret")
    ha2 = hex_hash("md5", "REGISTER:sip:example.com")
    assert answer["qop"] == "auth"
    assert answer["response"] == hex_hash("md5", f"{ha1}:n1:00000001:c:auth:{ha2}")


def test_no_qop_is_rfc2069_form() -> None:
    # response = H(H(username:realm:password):nonce:H(method:uri)); no cnonce, nc or qop.
    client = DigestClient([Credentials("Mufasa", "CircleOfLife")])
    value = 'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    assert client.handle_challenge(401, [value]) is ChallengeOutcome.ANSWERED
    _, answer = only_header(client, "GET", "/dir/index.html")
    assert set(answer) == {"username", "realm", "nonce", "uri", "response", "algorithm"}
    assert answer["response"] == "1949323746fe6a43ef61f9606e7febea"


def test_sess_without_qop_still_sends_its_cnonce() -> None:
    # HA1 = H(H(username:realm:password):nonce:cnonce); response = H(HA1:nonce:H(method:uri))
    client = DigestClient([Credentials("alice", "s3cret")], cnonce_factory=lambda: "k")
    client.handle_challenge(401, [challenge(extra=", algorithm=MD5-sess")])
    _, answer = only_header(client)
    ha1 = hex_hash("md5", hex_hash("md5", "alice:example.com:s3cret") + ":n1:k")
    assert answer["cnonce"] == "k"
    assert "qop" not in answer
    assert "nc" not in answer
    assert answer["response"] == hex_hash(
        "md5", f"{ha1}:n1:" + hex_hash("md5", "REGISTER:sip:example.com")
    )


def test_values_needing_quotes_round_trip() -> None:
    client = DigestClient([Credentials('a"l\\ice', "pw")], cnonce_factory=lambda: "c")
    client.handle_challenge(401, [r'Digest realm="r\"1", nonce="n,1", opaque="", qop=auth'])
    _, answer = only_header(client, uri="sip:x@example.com;transport=tcp")
    assert answer["username"] == 'a"l\\ice'
    assert answer["realm"] == 'r"1'
    assert answer["nonce"] == "n,1"
    assert answer["opaque"] == ""
    assert answer["uri"] == "sip:x@example.com;transport=tcp"
    ha1 = hex_hash("md5", 'a"l\\ice:r"1:pw')
    ha2 = hex_hash("md5", "REGISTER:sip:x@example.com;transport=tcp")
    assert answer["response"] == hex_hash("md5", f"{ha1}:n,1:00000001:c:auth:{ha2}")


# Choosing challenges and credentials -------------------------------------------------------


def test_strongest_algorithm_per_realm_and_sess_ranks_with_its_base() -> None:
    values = [
        challenge("a", "a1", ", algorithm=MD5"),
        challenge("a", "a2", ", algorithm=SHA-512-256"),
        challenge("a", "a3", ", algorithm=SHA-256"),
        challenge("b", "b1", ", algorithm=MD5-sess"),
        challenge("b", "b2", ", algorithm=MD5"),
        challenge("b", "b3", ", algorithm=SHA-1"),
    ]
    client = DigestClient([Credentials("u", "p")])
    assert client.handle_challenge(401, values) is ChallengeOutcome.ANSWERED
    answers = [directives(value) for _, value in client.authorization_headers("REGISTER", "sip:x")]
    assert [(item["realm"], item["nonce"], item["algorithm"]) for item in answers] == [
        ("a", "a2", "SHA-512-256"),
        ("b", "b1", "MD5-sess"),  # a tie with MD5: the first offered stays
    ]


def test_realm_specific_credentials_and_any_realm_fallback() -> None:
    credentials = [
        Credentials("anyone", "p-any"),
        Credentials("alice", "p-a", realm="a"),
        Credentials("bob", "p-b", realm="b"),
    ]
    client = DigestClient(credentials, cnonce_factory=lambda: "c")
    value = ", ".join([challenge("a", "na"), challenge("c", "nc")])
    assert client.handle_challenge(407, [value]) is ChallengeOutcome.ANSWERED
    headers = client.authorization_headers("REGISTER", "sip:x")
    assert [name for name, _ in headers] == ["Proxy-Authorization", "Proxy-Authorization"]
    answers = {item["realm"]: item for item in (directives(value) for _, value in headers)}
    ha2 = hex_hash("md5", "REGISTER:sip:x")
    for realm, user, password, nonce in [
        ("a", "alice", "p-a", "na"),
        ("c", "anyone", "p-any", "nc"),
    ]:
        ha1 = hex_hash("md5", f"{user}:{realm}:{password}")
        assert answers[realm]["username"] == user
        assert answers[realm]["response"] == hex_hash("md5", f"{ha1}:{nonce}:00000001:c:auth:{ha2}")


def test_no_credentials_for_the_realm() -> None:
    client = DigestClient([Credentials("alice", "pw", realm="a")])
    assert client.handle_challenge(401, [challenge("b")]) is ChallengeOutcome.NO_CREDENTIALS
    assert client.authorization_headers("REGISTER", "sip:x") == []


@pytest.mark.parametrize(
    "value",
    [
        'Basic realm="example.com"',
        challenge(extra=", algorithm=SHA-1"),
        challenge(extra=', qop="auth-conf"'),
        "NTLM",
        "",
    ],
)
def test_unsupported_challenges(value: str) -> None:
    client = DigestClient([Credentials("alice", "pw")])
    assert client.handle_challenge(401, [value]) is ChallengeOutcome.UNSUPPORTED
    assert client.authorization_headers("REGISTER", "sip:x") == []


def test_unknown_schemes_are_skipped() -> None:
    value = (
        'Basic realm="x", NTLM, Negotiate abc==, NoOneKnowsThisScheme opaque-data=here, '
        'digest realm="r", nonce="n", Bearer realm="y", error="invalid_token"'
    )
    parsed = parse_challenges(value, proxy=True)
    assert [(item.realm, item.nonce, item.algorithm, item.proxy) for item in parsed] == [
        ("r", "n", Algorithm.MD5, True)
    ]


def test_rfc4475_regaut01_scheme_is_not_a_challenge() -> None:
    path = RFC4475 / "regaut01.dat"
    if not path.exists():
        pytest.skip(f"RFC 4475 messages not present at {RFC4475}")
    lines = path.read_bytes().decode().split("\r\n")
    value = next(
        line.partition(":")[2].strip()
        for line in lines
        if line.lower().startswith("authorization:")
    )
    assert value == "NoOneKnowsThisScheme opaque-data=here"
    assert parse_challenges(value, proxy=False) == []
    assert mask_authorization(value) == "NoOneKnowsThisScheme ***"


# The answer life cycle ---------------------------------------------------------------------


def test_nonce_reuse_counts_up_with_a_new_cnonce() -> None:
    client = DigestClient([Credentials("alice", "pw")], cnonce_factory=cnonces())
    assert client.authorization_headers("REGISTER", "sip:x") == []
    client.handle_challenge(401, [challenge()])
    _, first = only_header(client)
    client.request_succeeded()
    _, second = only_header(client)
    assert (first["nc"], first["cnonce"]) == ("00000001", "cn1")
    assert (second["nc"], second["cnonce"]) == ("00000002", "cn2")
    assert second["nonce"] == first["nonce"] == "n1"
    assert second["response"] != first["response"]


def test_wrong_password_stops_after_two_registers() -> None:
    """REGISTER -> 401 -> REGISTER with answer -> 401 -> REJECTED: nothing more is sent."""
    client = DigestClient([Credentials("alice", "wrong")])
    registers = 0
    outcome = None
    headers = client.authorization_headers("REGISTER", "sip:example.com")
    for nonce in ["n1", "n2", "n3", "n4"]:
        registers += 1  # send REGISTER carrying `headers`; the registrar answers 401
        outcome = client.handle_challenge(401, [challenge(nonce=nonce)])
        if outcome is not ChallengeOutcome.ANSWERED:
            break
        headers = client.authorization_headers("REGISTER", "sip:example.com")
        assert headers
    assert outcome is ChallengeOutcome.REJECTED
    assert registers == 2
    # The refused credentials are never sent again, however the server insists.
    assert client.authorization_headers("REGISTER", "sip:example.com") == []
    assert client.handle_challenge(401, [challenge(nonce="n5")]) is ChallengeOutcome.REJECTED
    assert client.handle_challenge(401, [challenge(nonce="n6", extra=", stale=true")]) is (
        ChallengeOutcome.REJECTED
    )
    assert client.authorization_headers("REGISTER", "sip:example.com") == []


def test_registration_with_refreshes() -> None:
    client = DigestClient([Credentials("alice", "pw")], cnonce_factory=cnonces())
    assert client.handle_challenge(401, [challenge()]) is ChallengeOutcome.ANSWERED
    assert only_header(client)[1]["nc"] == "00000001"
    client.request_succeeded()
    for expected_nc in ["00000002", "00000003"]:  # refreshes answer at once
        assert only_header(client)[1]["nc"] == expected_nc
        client.request_succeeded()


def test_new_challenge_after_reuse_is_answered_once_then_rejected() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    client.handle_challenge(401, [challenge(nonce="n1")])
    client.authorization_headers("REGISTER", "sip:x")
    client.request_succeeded()
    client.authorization_headers("REGISTER", "sip:x")  # pre-emptive, nc 2
    # The server wants a fresh nonce (e.g. the password changed on its side).
    assert client.handle_challenge(401, [challenge(nonce="n2")]) is ChallengeOutcome.ANSWERED
    _, fresh = only_header(client)
    assert (fresh["nonce"], fresh["nc"]) == ("n2", "00000001")
    assert client.handle_challenge(401, [challenge(nonce="n3")]) is ChallengeOutcome.REJECTED
    assert client.authorization_headers("REGISTER", "sip:x") == []


def test_stale_nonce_is_answered_without_counting_as_rejection() -> None:
    client = DigestClient([Credentials("alice", "pw")], cnonce_factory=cnonces())
    client.handle_challenge(401, [challenge(nonce="n1")])
    client.authorization_headers("REGISTER", "sip:x")
    client.request_succeeded()
    client.authorization_headers("REGISTER", "sip:x")  # pre-emptive reuse of n1
    stale = challenge(nonce="n2", extra=', qop="auth", stale=TRUE')
    assert client.handle_challenge(401, [stale]) is ChallengeOutcome.STALE
    _, answer = only_header(client)
    assert (answer["nonce"], answer["nc"]) == ("n2", "00000001")
    client.request_succeeded()
    assert only_header(client)[1]["nc"] == "00000002"


def test_stale_after_a_fresh_answer_is_answered_once() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    client.handle_challenge(401, [challenge(nonce="n1")])
    client.authorization_headers("REGISTER", "sip:x")
    # The nonce expired while our answer travelled: the credentials were good.
    stale2 = challenge(nonce="n2", extra=", stale=true")
    assert client.handle_challenge(401, [stale2]) is ChallengeOutcome.STALE
    assert only_header(client)[1]["nonce"] == "n2"
    # A server calling every fresh nonce stale would loop for ever: stop.
    stale3 = challenge(nonce="n3", extra=", stale=true")
    assert client.handle_challenge(401, [stale3]) is ChallengeOutcome.REJECTED
    assert client.authorization_headers("REGISTER", "sip:x") == []


def test_fresh_challenge_after_a_stale_answer_is_rejected() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    client.handle_challenge(401, [challenge(nonce="n1", extra=", stale=true")])
    client.authorization_headers("REGISTER", "sip:x")
    assert client.handle_challenge(401, [challenge(nonce="n2")]) is ChallengeOutcome.REJECTED


def test_challenge_before_sending_replaces_the_nonce() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    client.handle_challenge(401, [challenge(nonce="n1")])
    assert client.handle_challenge(401, [challenge(nonce="n2")]) is ChallengeOutcome.ANSWERED
    assert only_header(client)[1]["nonce"] == "n2"


def test_proxy_and_server_answers_are_kept_apart() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    assert client.handle_challenge(407, [challenge("proxy", "p1")]) is ChallengeOutcome.ANSWERED
    assert [name for name, _ in client.authorization_headers("REGISTER", "sip:x")] == [
        "Proxy-Authorization"
    ]
    # The proxy let the request through; the registrar asks in turn.
    assert client.handle_challenge(401, [challenge("registrar", "r1")]) is (
        ChallengeOutcome.ANSWERED
    )
    headers = client.authorization_headers("REGISTER", "sip:x")
    assert [
        (name, directives(value)["realm"], directives(value)["nc"]) for name, value in headers
    ] == [
        ("Proxy-Authorization", "proxy", "00000002"),
        ("Authorization", "registrar", "00000001"),
    ]


def test_forget_drops_every_nonce() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    client.handle_challenge(401, [challenge()])
    client.authorization_headers("REGISTER", "sip:x")
    client.forget()
    assert client.authorization_headers("REGISTER", "sip:x") == []
    assert client.handle_challenge(401, [challenge(nonce="n2")]) is ChallengeOutcome.ANSWERED


def test_default_cnonces_differ() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    client.handle_challenge(401, [challenge()])
    first = only_header(client)[1]["cnonce"]
    second = only_header(client)[1]["cnonce"]
    assert first
    assert second
    assert first != second


# Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="example.com, nonce="n1"',  # unterminated quote
        'Digest realm="example.com", qop="auth"',  # no nonce
        'Digest nonce="n1", qop="auth"',  # no realm
        'realm="example.com", nonce="n1"',  # no scheme
        'Digest realm="a", realm="b", nonce="n1"',  # repeated directive
        'Digest realm="a", nonce="n1", "x"=y',  # bad directive name
        '"Digest" realm="a", nonce="n1"',  # bad scheme
        'Digest realm="a",\r\n nonce="n1"',  # raw line break
        "Digest =x",
    ],
)
def test_malformed_challenges_raise_and_change_nothing(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_challenges(value, proxy=False)
    client = DigestClient([Credentials("alice", "pw")])
    client.handle_challenge(401, [challenge()])
    client.authorization_headers("REGISTER", "sip:x")
    with pytest.raises(RemoteProtocolError):
        client.handle_challenge(401, [challenge(nonce="other"), value])
    _, answer = only_header(client)
    assert (answer["nonce"], answer["nc"]) == ("n1", "00000002")


def test_impossible_requests_raise_local_errors() -> None:
    client = DigestClient([Credentials("alice", "pw")])
    with pytest.raises(LocalProtocolError):
        client.handle_challenge(200, [challenge()])
    client.handle_challenge(401, [challenge()])
    with pytest.raises(LocalProtocolError):
        client.authorization_headers("REG ISTER", "sip:x")
    with pytest.raises(LocalProtocolError):
        client.authorization_headers("REGISTER", "sip:x\r\nX-Evil: 1")
    assert only_header(client)[1]["nc"] == "00000001"
    with pytest.raises(LocalProtocolError):
        Credentials("alice\r\nX-Evil: 1", "pw")


def test_arbitrary_text_raises_only_the_documented_error() -> None:
    rng = random.Random(3261)
    alphabet = 'Digest realm="nonce=, \\\t;<>qop-auth'
    seeds = [RFC2617_CHALLENGE, rfc7616_challenge("SHA-256"), 'Basic realm="x", NTLM']
    for _ in range(3000):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(text) + 1)
            if rng.random() < 0.5 and position < len(text):
                del text[position]
            else:
                text.insert(position, rng.choice(alphabet))
        value = "".join(text)
        assert isinstance(mask_authorization(value), str)
        try:
            parsed = parse_challenges(value, proxy=False)
        except RemoteProtocolError:
            continue
        assert all(isinstance(item, Challenge) for item in parsed)


# Secrets -----------------------------------------------------------------------------------


def test_password_stays_out_of_repr_headers_and_logs() -> None:
    password = "Circle Of Life"
    credentials = Credentials("Mufasa", password)
    assert password not in repr(credentials)
    client = DigestClient([credentials], cnonce_factory=lambda: "0a4f113b")
    assert password not in repr(client)
    client.handle_challenge(401, [RFC2617_CHALLENGE])
    ((_, value),) = client.authorization_headers("GET", "/dir/index.html")
    assert password not in value
    masked = mask_authorization(value)
    assert password not in masked
    for secret in [
        "6629fae49393a05397450978507c4ef1",
        "0a4f113b",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    ]:
        assert secret in value
        assert secret not in masked
    answer = directives(masked)
    assert (answer["response"], answer["cnonce"], answer["nonce"]) == ("***", "***", "***")
    assert (answer["username"], answer["uri"], answer["nc"]) == (
        "Mufasa",
        "/dir/index.html",
        "00000001",
    )
    assert param(parse_params(masked.partition(" ")[2], ","), "opaque") == (
        "5ccc069c403ebaf9f0171e9517f40e41"
    )


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Basic ***"),
        ('Digest username="a", response="abc', "***"),  # unterminated: masked whole
        (
            'Digest username="a", nextnonce="x", rspauth="y"',
            'Digest username="a", nextnonce="***", rspauth="***"',
        ),
        ("", ""),
    ],
)
def test_mask_authorization_edge_cases(value: str, masked: str) -> None:
    assert mask_authorization(value) == masked
