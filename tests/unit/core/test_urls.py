"""Base URL validation: what clients can append /_matrix/client/... to."""

from __future__ import annotations

import pytest

from synapse_base_cs_url.core.urls import validate_base_url


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://matrix.example.com", "https://matrix.example.com"),
        ("https://matrix.example.com/", "https://matrix.example.com"),
        ("HTTPS://Matrix.Example.COM/", "https://matrix.example.com"),
        ("http://127.0.0.1:8008", "http://127.0.0.1:8008"),
        ("http://[::1]:8008/", "http://[::1]:8008"),
        ("https://example.com/matrix/", "https://example.com/matrix"),
        ("https://example.com/Case/Kept", "https://example.com/Case/Kept"),
    ],
)
def test_valid_urls_are_normalised(given: str, normalised: str) -> None:
    assert validate_base_url(given) == normalised


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (None, "must be a string, not NoneType"),
        (42, "must be a string, not int"),
        (["https://x"], "must be a string, not list"),
        ("", "'' is not a URL (empty or surrounded by whitespace)"),
        (" https://x", "' https://x' is not a URL (empty or surrounded by whitespace)"),
        (
            "matrix.example.com",
            "'matrix.example.com' is a relative URL; give an absolute http(s) URL",
        ),
        ("/_matrix", "'/_matrix' is a relative URL; give an absolute http(s) URL"),
        ("ftp://x.example", "'ftp://x.example' has scheme 'ftp'; only http and https are allowed"),
        ("https://", "'https://' has no host"),
        ("https://u:p@x.example", "'https://***@x.example' must not contain credentials"),
        (
            "https://x.example/?a=1",
            "'https://x.example/?a=1' has a query string; a base URL cannot have one",
        ),
        (
            "https://x.example?",
            "'https://x.example?' has a query string; a base URL cannot have one",
        ),
        (
            "https://x.example/#top",
            "'https://x.example/#top' has a fragment; a base URL cannot have one",
        ),
        (
            "https://x.example:99999",
            "'https://x.example:99999' is not a valid URL: Port out of range 0-65535",
        ),
    ],
)
def test_invalid_urls_say_what_is_wrong(given: object, message: str) -> None:
    with pytest.raises(ValueError) as e:
        validate_base_url(given)
    assert str(e.value) == message


@pytest.mark.parametrize(
    "given",
    [
        "https://alice:hunter2@x.example",
        "https://alice:hunter2@x.example:99999",
        "ftp://alice:hunter2@x.example/path",
        "https://alice:hunter2@x.example/?a=1",
        "https://alice:hunter2@x.example#top",
        "https://alice:hun@ter2@x.example",
        " https://alice:hunter2@x.example",
    ],
)
def test_messages_never_show_a_password(given: str) -> None:
    # They reach Synapse's startup output, and its log when a compute function returns one.
    with pytest.raises(ValueError) as e:
        validate_base_url(given)
    assert "hunter2" not in str(e.value)
    assert "ter2" not in str(e.value)
    assert "x.example" in str(e.value)
