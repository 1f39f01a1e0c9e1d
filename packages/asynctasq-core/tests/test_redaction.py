"""Secrets are never shown: passwords in URLs and DSNs, ``key=value`` secrets, secret
settings; and masking costs time in proportion to the text, whatever the text holds."""

from __future__ import annotations

import re
import sys
import time
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from asynctasq import redaction
from asynctasq.redaction import (
    MASK,
    is_secret_name,
    redact_setting,
    redact_settings,
    redact_text,
    redact_url,
    url_password,
)

# -- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:p%40ss@h", "redis://user:***@h"),
        ("redis://u:p@ss@h/0", "redis://u:***@h/0"),
        ("postgresql://u:secret@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("host=h password=abc user=u", "host=h password=*** user=u"),
        ("https://h/x?token=abc&a=1", "https://h/x?token=***&a=1"),
        ("sqs?aws_secret_access_key=XYZ", "sqs?aws_secret_access_key=***"),
        ("redis://h:6379", "redis://h:6379"),
        ("mysql://root@h:3306/test", "mysql://root@h:3306/test"),
        ("http://h:80?x=a@b", "http://h:80?x=a@b"),
        ("see a:b@c and redis://:x@h/", "see a:b@c and redis://:***@h/"),
        # Unencoded "/", "?", "#", "@" and "://" in a password: masked whole, not half.
        ("postgresql://user:pa/ss@host/db", "postgresql://user:***@host/db"),
        ("redis://:p?w#d@h:1/0", "redis://:***@h:1/0"),
        ("redis://u:p/a@s?s@h/0?x=a@b", "redis://u:***@h/0?x=a@b"),
        ("redis://u:a://b@h/0", "redis://u:***@h/0"),
        # A password in the query string.
        ("redis://host:6379/0?password=secret", "redis://host:6379/0?password=***"),
        (
            "postgres://app@db/app?sslmode=disable&PassWord=x",
            "postgres://app@db/app?sslmode=disable&PassWord=***",
        ),
        # Several URLs in one run of text.
        ("redis://a:p@h1,redis://b:q@h2", "redis://a:***@h1,redis://b:***@h2"),
        ("http://h:80/x,https://u:p@h", "http://h:80/x,https://u:***@h"),
        # The documented over-masking: an "@" in the path after a host:port.
        ("https://h:443/users/@me", "https://h:***@me"),
        ("https://medium.com/@me", "https://medium.com/@me"),
        ("token='a b' and password=\"c d\"", "token=*** and password=***"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:pa/ss@host/db", "postgresql://user:***@host/db"),
        ("redis://host:6379/0?password=secret", "redis://host:6379/0?password=***"),
        ("postgresql://u:p ss@h/db", "postgresql://u:***@h/db"),
        (
            "host=db user=app password=hunter2 dbname=app",
            "host=db user=app password=*** dbname=app",
        ),
        ("host=db password='it\\'s a secret' dbname=app", "host=db password=*** dbname=app"),
        ("host=db password = a&b;c dbname=app", "host=db password = *** dbname=app"),
        ("host=db user=a@corp password=b:c@d", "host=db user=a@corp password=***"),
        ("user:pw@host:6379", "user:***@host:6379"),
        ("localhost:6379", "localhost:6379"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_url_password_names_what_is_masked() -> None:
    assert url_password("postgresql://user:pa/ss@host/db") == "pa/ss"
    assert url_password("redis://:p%40ss@h") == "p%40ss"
    assert url_password("user:pw@h") == "pw"
    assert url_password("redis://u@h") is None
    assert url_password("redis://u:@h") is None
    assert url_password("redis://h:6379/0?x=a@b") is None


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("ssl_password", True),
        ("aws_secret_access_key", True),
        ("aws_access_key_id", True),
        ("aws_session_token", True),
        ("ASYNCTASQ_REDIS_PASSWORD", True),
        ("client.secret", True),
        ("key_prefix", False),
        ("ssl_keyfile", False),
        ("ssl_key_file", False),
        ("token_ttl", False),
        ("url", False),
        ("", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redact_settings() -> None:
    assert redact_setting("password", "x") == MASK
    assert redact_setting("password", None) is None
    assert redact_setting("password", "") == ""
    assert redact_setting("db", 3) == 3
    # A setting's value is one connection string: a space does not end its password.
    assert redact_setting("dsn", "postgresql://u:p w@h/db") == "postgresql://u:***@h/db"
    assert redact_settings({"url": "redis://:x@h", "ssl_password": "y", "db": 0}) == {
        "url": "redis://:***@h",
        "ssl_password": MASK,
        "db": 0,
    }


# -- properties ----------------------------------------------------------------------------

_LONG_S = "\u017f"  # re.IGNORECASE equates it with "s"
# Characters that need percent-encoding in a URL, and letters from elsewhere.
_SPECIAL = st.sampled_from([*"/@:?#%&=;+!$'()*,[]~\\\"", "é", "ß", "密", "😀", _LONG_S])
_ANY_VISIBLE = st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")).filter(
    lambda char: not char.isspace()
)
_TEXT = st.text(st.one_of(_SPECIAL, _ANY_VISIBLE), max_size=12)
_RAW_SECRET = st.text(st.one_of(_SPECIAL, _ANY_VISIBLE), min_size=1, max_size=16)

_SCHEMES = st.sampled_from(
    ["redis", "rediss", "redis+cluster", "postgresql", "postgres", "mysql", "amqp", "https"]
)
_HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9\-]{0,12}(\.[a-z][a-z0-9\-]{0,8}){0,2}", fullmatch=True),
    st.sampled_from(["127.0.0.1", "[::1]", "[2001:db8::7]", "db"]),
)
_PORTS = st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}"))
_PATHS = st.lists(_TEXT, max_size=3).map(
    lambda parts: "".join(f"/{quote(p, safe='')}" for p in parts)
)
_PLAIN_KEYS = st.sampled_from(["sslmode", "db", "application_name", "email", "x", "timeout"])
_SECRET_KEYS = st.sampled_from(
    [
        "password",
        "PASSWORD",
        "token",
        "secret",
        "api_key",
        "apikey",
        "access-key",
        "X-Amz-Security-Token",
        "client_secret",
        "ssl_passphrase",
    ]
)
# Query values keep "@" and "/" raw (``?email=a@b``): an "@" after "=" is data.
_PLAIN_PARAMS = st.tuples(_PLAIN_KEYS, _TEXT.map(lambda v: quote(v, safe="@/")))
_QUERIES = st.lists(_PLAIN_PARAMS, max_size=3).map(
    lambda pairs: "?" + "&".join(f"{k}={v}" for k, v in pairs) if pairs else ""
)


@given(
    scheme=_SCHEMES,
    user=_TEXT,
    password=_RAW_SECRET,
    host=_HOSTS,
    port=_PORTS,
    path=_PATHS,
    query=_QUERIES,
)
def test_well_formed_urls_mask_exactly_the_password(
    scheme: str, user: str, password: str, host: str, port: str, path: str, query: str
) -> None:
    encoded_user, encoded_password = quote(user, safe=""), quote(password, safe="")
    tail = f"{host}{port}{path}{query}"
    url = f"{scheme}://{encoded_user}:{encoded_password}@{tail}"
    expected = f"{scheme}://{encoded_user}:{MASK}@{tail}"

    assert redact_url(url) == expected
    assert redact_text(f"cannot connect to {url}: refused") == (
        f"cannot connect to {expected}: refused"
    )
    # The same password as urllib (and so asyncpg, redis-py, aiomysql) finds.
    assert url_password(url) == urlsplit(url).password == encoded_password


def _reads_as_host_and_port(text: str) -> bool:
    authority = re.split(r"[/?#]", text, maxsplit=1)[0]
    if ":" not in authority or authority.endswith("]"):
        return True
    port = authority.rpartition(":")[2]
    return port.isascii() and port.isdigit()


@given(
    scheme=_SCHEMES,
    user=_TEXT.filter(lambda u: "=" not in u),
    password=_RAW_SECRET,
    host=_HOSTS,
    port=_PORTS,
    path=_PATHS,
    query=_QUERIES,
)
@example(
    scheme="postgresql", user="user", password="pa/ss", host="host", port="", path="/db", query=""
)
@example(scheme="redis", user="", password="a://b", host="h", port="", path="", query="?x=a@b")
@example(scheme="redis", user="u@corp", password="p?w#d@x", host="h", port=":1", path="", query="")
def test_unencoded_passwords_are_masked_whole(
    scheme: str, user: str, password: str, host: str, port: str, path: str, query: str
) -> None:
    """A password pasted without percent-encoding: never shown, nothing else lost."""
    credentials = f"{user}:{password}"
    # The documented limits: text that reads as a query value, a port or a host.
    query_start = re.search(r"[?#]", credentials)
    assume(not (query_start and "=" in credentials[query_start.start() :]))
    before_scheme_mark = credentials.split("://", 1)[0]
    assume(not ("://" in credentials and _reads_as_host_and_port(before_scheme_mark)))
    assume("@" not in before_scheme_mark or "://" not in credentials)

    tail = f"{host}{port}{path}{query}"
    url = f"{scheme}://{credentials}@{tail}"
    # The mask starts at the first ":" of the credentials, inside a user holding one.
    expected = f"{scheme}://{user.split(':', 1)[0]}:{MASK}@{tail}"
    assume(password not in expected)  # a password that is also a host name, say

    assert redact_url(url) == expected
    assert redact_text(url) == expected
    assert redact_text(f"failed: {url}") == f"failed: {expected}"


@given(
    scheme=_SCHEMES,
    host=_HOSTS,
    path=_PATHS,
    params=st.lists(
        st.one_of(
            _PLAIN_PARAMS.map(lambda kv: (*kv, False)),
            st.tuples(_SECRET_KEYS, _RAW_SECRET.map(lambda v: quote(v, safe="@/:")), st.just(True)),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_secrets_in_query_strings_are_masked(
    scheme: str, host: str, path: str, params: list[tuple[str, str, bool]]
) -> None:
    url = f"{scheme}://{host}{path}?" + "&".join(f"{k}={v}" for k, v, _ in params)
    expected = f"{scheme}://{host}{path}?" + "&".join(
        f"{k}={MASK if secret else v}" for k, v, secret in params
    )
    assert redact_url(url) == expected
    assert redact_text(url) == expected


_DSN_VALUES = st.from_regex(r"[a-z0-9_.]{1,10}", fullmatch=True)


@given(
    host=_DSN_VALUES,
    user=_DSN_VALUES,
    dbname=_DSN_VALUES,
    password=_RAW_SECRET,
    quoted=st.booleans(),
    spaces=st.sampled_from(["", " ", "  "]),
    position=st.integers(0, 3),
)
@example(host="db", user="app", dbname="d", password="a@b:c", quoted=False, spaces="", position=3)
@example(host="db", user="app", dbname="d", password="it's", quoted=True, spaces=" ", position=1)
def test_keyword_dsns_mask_the_password(
    host: str, user: str, dbname: str, password: str, quoted: bool, spaces: str, position: int
) -> None:
    if quoted:
        escaped = password.replace("\\", "\\\\").replace("'", "\\'")
        value = f"'{escaped} x'"  # quoting is what lets a value hold a space
    else:
        assume(password[0] not in "'\"")
        value = password
    pairs = [f"host={host}", f"user={user}", f"dbname={dbname}", "sslmode=require"]
    dsn_pairs = [*pairs[:position], f"password{spaces}={spaces}{value}", *pairs[position:]]
    shown_pairs = [*pairs[:position], f"password{spaces}={spaces}{MASK}", *pairs[position:]]
    dsn, expected = " ".join(dsn_pairs), " ".join(shown_pairs)
    assume(password not in expected)

    assert redact_url(dsn) == expected
    assert password not in redact_url(dsn)


@given(st.text(st.one_of(_SPECIAL, st.sampled_from(list("ab:/ \n=")), st.characters())))
@example("x://u:a://b:c@d@e?f=g@h i")
def test_any_text_is_masked_without_error_and_masking_again_changes_nothing(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
    assert isinstance(redact_url(text), str)


# -- cost ----------------------------------------------------------------------------------

_KEY_LETTERS = "paswdecrtokny"  # the letters of the casefolded key parts


def test_the_fast_key_test_misses_no_spelling_of_a_key() -> None:
    """Text skipped by the C-speed test holds no key the case-insensitive pattern matches.

    `re.IGNORECASE` equates a few letters from elsewhere with ASCII ones (the long s with
    "s", the Kelvin sign with "k"); `str.casefold` must map each of them to its letter, or
    ``PA\u017f\u017fWORD=x`` would be skipped unmasked.
    """
    assert all(
        any(part in key for part in redaction._SECRET_KEY_PARTS)
        for key in (
            "password",
            "passwd",
            "pwd",
            "secret",
            "token",
            "passphrase",
            "api_key",
            "api-key",
            "apikey",
            "access_key",
            "access-key",
            "accesskey",
        )
    )
    letters = re.compile(f"[{_KEY_LETTERS}]", re.IGNORECASE)
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if letters.fullmatch(char):
            [letter] = [x for x in _KEY_LETTERS if re.fullmatch(x, char, re.IGNORECASE)]
            assert char.casefold() == letter, hex(code)
    key = f"PA{_LONG_S * 2}WORD="
    assert redact_text(f"{key}x") == f"{key}{MASK}"


# Shapes that made the former patterns backtrack (runs of characters a scheme, a URL or a
# key may hold, where a match almost starts and fails at the end).
_HOSTILE = {
    "letters": "a",
    "scheme then letters": "x://a",
    "scheme, colon, letters": "x://:a",
    "colons": "a:",
    "schemes": "a://",
    "credentials": "a://:@",
    "ats": "@",
    "key words": "password",
    "dashes": "a-",
    "key word dashes": "-token",
    "password keys": "password=",
    "password keys without values": "password=&",
    "keys": "a=",
    "unclosed quotes": "password='a ",
    "query ats": "x://u:?x=@",
}
# Appended to every shape, so that every pattern has to run over it.
_TAIL = " redis://u:hunter2@h/0?token=t1 password=p1"
_TAIL_MASKED = " redis://u:***@h/0?token=*** password=***"


def _hostile(shape: str, size: int) -> str:
    if len(shape) <= 6 and "://" in shape and shape[-1] == "a":
        # The prefix once, then one long run: "x://aaaa...".
        return shape[:-1] + "a" * size + _TAIL
    return (shape * (size // len(shape) + 1))[:size] + _TAIL


@pytest.mark.parametrize("shape", list(_HOSTILE))
@pytest.mark.parametrize(("size", "bound"), [pytest.param(256 * 1024, 1.0, id="256KiB")])
def test_hostile_text_is_masked_in_linear_time(shape: str, size: int, bound: float) -> None:
    """Text shaped to make the former patterns quadratic (or worse) is masked well inside a
    lease renewal interval: half the visibility timeout, 15 s for a 30 s timeout, the
    shortest one would choose. The former patterns took about 2 s for 40 000 characters of
    letters, over a minute for 256 KiB and hours for 5 MiB (``a-``: 2 minutes for 40 000);
    these take well under the bounds: ~0.1 s for 256 KiB, ~1 s for 5 MiB on a laptop."""
    text = _hostile(_HOSTILE[shape], size)
    started = time.perf_counter()
    masked = redact_text(text)
    assert time.perf_counter() - started < bound
    assert masked.endswith(_TAIL_MASKED)
    # As one connection string, too (a setting's value).
    started = time.perf_counter()
    redact_url(text)
    assert time.perf_counter() - started < bound


@pytest.mark.slow
def test_a_5_mib_message_of_every_hostile_shape_is_masked_in_time() -> None:
    """One 5 MiB error message made of every shape above, each run long enough (about
    350 KiB) that the former patterns would take minutes on it: masked in seconds."""
    part = 5 * 1024 * 1024 // len(_HOSTILE)
    text = "".join(_hostile(shape, part) for shape in _HOSTILE.values())
    started = time.perf_counter()
    masked = redact_text(text)
    assert time.perf_counter() - started < 5.0
    assert masked.endswith(_TAIL_MASKED)


def test_python_level_work_does_not_grow_with_text_that_holds_no_url() -> None:
    """Counted, not timed: on text with no URL credentials and no secret keys, masking a
    log line makes the same few calls for 1 MiB as for 4 MiB; the per-character work is
    done by single linear scans in C."""

    def calls(text: str) -> int:
        count = 0

        def profile(frame: object, event: str, arg: object) -> None:
            nonlocal count
            if event in ("call", "c_call"):
                count += 1

        sys.setprofile(profile)
        try:
            redact_text(text)
        finally:
            sys.setprofile(None)
        return count

    for shape in ("a:", "x://" + "a" * 100, "@", "a=", "-token", "password "):
        small = shape * (1024 * 1024 // len(shape))
        assert calls(small * 4) == calls(small), shape
