"""The one redactor every sink writes through."""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

import runner
from runner.secrets import LOGGERS, MASK, Redactor, masked_logs


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


def test_redact_masks_a_secret_as_a_url_or_a_json_string_carries_it() -> None:
    secret = 'sec/+ &="ret'
    redactor = Redactor([secret])
    url = httpx.URL(f"http://h/p/{secret}", params={"k": secret})
    body = httpx.Request("POST", "http://h/", json={"k": secret}).content.decode()

    assert redactor.redact(str(url)) == f"http://h/p/{MASK}?k={MASK}"
    assert redactor.redact(body) == f'{{"k":"{MASK}"}}'


def test_masked_logs_mask_records_of_httpx_while_the_block_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    redactor = Redactor(["log-secret"])

    with masked_logs(redactor):
        logging.getLogger("httpx").info("GET %s", "http://h/?key=log-secret")
    logging.getLogger("httpx").info("after %s", "log-secret")

    assert [record.getMessage() for record in caplog.records] == [
        f"GET http://h/?key={MASK}",
        "after log-secret",
    ]


def test_every_logger_of_the_package_is_masked_during_a_run() -> None:
    """A module that logs but is missing from LOGGERS would log unmasked."""
    package = Path(runner.__file__).parent
    logging_modules = {
        "runner."
        + path.relative_to(package).with_suffix("").as_posix().replace("/", ".")
        for path in package.rglob("*.py")
        if re.search(r"logging\.getLogger\(__name__\)", path.read_text("utf-8"))
    }
    assert logging_modules, "no logging module found: the search is broken"
    assert logging_modules <= set(LOGGERS)
