"""The one redactor every sink writes through."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

from runner.secrets import MASK, Redactor


def test_redact_masks_raw_and_urlencoded_forms() -> None:
    secret = "z/tZ9V+wF Tt1rFw="
    redactor = Redactor([secret])
    text = f"raw {secret} form {quote_plus(secret)}"
    assert redactor.redact(text) == f"raw {MASK} form {MASK}"


def test_redact_masks_the_basic_credential_in_both_encodings() -> None:
    redactor = Redactor()
    redactor.add_basic_credential("my id", "p@ss:word")
    raw = base64.b64encode(b"my id:p@ss:word").decode()
    encoded = base64.b64encode(b"my+id:p%40ss%3Aword").decode()
    assert MASK in redactor.redact(raw)
    assert raw not in redactor.redact(f"Basic {raw}")
    assert encoded not in redactor.redact(f"Basic {encoded}")


def test_values_shorter_than_four_characters_are_left_alone() -> None:
    redactor = Redactor(["abc"])
    assert redactor.redact("abc abc") == "abc abc"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    redactor = Redactor(["token", "token-extended"])
    assert redactor.redact("token-extended") == MASK


def test_repr_shows_no_secret() -> None:
    assert "hunter22" not in repr(Redactor(["hunter22"]))
