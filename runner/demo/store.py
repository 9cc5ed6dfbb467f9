"""What the demo API remembers: its clients, the tokens it issued, invoices.

Everything lives in memory behind one lock. Each operation under the lock is
a few dictionary lookups, so a single lock is simpler than several and costs
nothing measurable even when benchmarks send thousands of requests.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BILLING_CLIENT",
    "CRM_CLIENT",
    "INVOICE_STATUSES",
    "DemoClient",
    "DemoStore",
    "InvalidInput",
    "invoice_fields",
]

INVOICE_STATUSES = ("open", "paid", "void")
MAX_CUSTOMER_LENGTH = 200

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DemoClient:
    """A registered OAuth2 client of the demo server and the scopes it may get."""

    client_id: str
    client_secret: str
    scopes: frozenset[str]

    def __repr__(self) -> str:
        scopes = sorted(self.scopes)
        return f"DemoClient(client_id={self.client_id!r}, scopes={scopes})"


# Public demo credentials: they open nothing but the demo server. The
# secrets hold "/" and "+" so that a client which skips the form-urlencoding
# of RFC 6749 section 2.3.1 before HTTP Basic is refused, as by a strict
# provider.
BILLING_CLIENT = DemoClient(
    client_id="demo-client",
    client_secret="demo-secret/7Qk2vN9x+R4mT8wLp3Hs6Jd1Fz5Yb0Cg",
    scopes=frozenset({"invoices", "customers"}),
)
CRM_CLIENT = DemoClient(
    client_id="demo-crm",
    client_secret="demo-crm-secret/Vb3Nq8+Kx2Lw7Pz4Rt9Gm5Hc1Js6Df",
    scopes=frozenset({"customers"}),
)


class InvalidInput(Exception):
    """A request the API refuses; the message goes back to the client."""


@dataclass(frozen=True, slots=True)
class _Token:
    expires_at: float
    scopes: frozenset[str]


class DemoStore:
    """The demo API's state: clients, live tokens and invoices.

    Args:
        clients: The registered OAuth2 clients.
        token_lifetime: Seconds an access token stays valid.
        clock: Monotonic seconds, read for token expiry.
    """

    def __init__(
        self,
        clients: Iterable[DemoClient],
        token_lifetime: float,
        clock: Callable[[], float],
    ) -> None:
        self.clients: Mapping[str, DemoClient] = {
            client.client_id: client for client in clients
        }
        self.token_lifetime = token_lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._tokens_issued = 0
        self._invoices: dict[int, JsonObject] = {}
        self._next_invoice_id = 1

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    def issue_token(self, scopes: frozenset[str]) -> str:
        """A new random access token for `scopes`, valid for the lifetime."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            expired = [
                key for key, value in self._tokens.items() if value.expires_at <= now
            ]
            for key in expired:
                del self._tokens[key]

            self._tokens[token] = _Token(now + self.token_lifetime, scopes)
            self._tokens_issued += 1
        return token

    def token_scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of a valid token, or None when it is unknown or expired."""
        with self._lock:
            found = self._tokens.get(token)
            if found is None:
                return None
            if found.expires_at <= self._clock():
                del self._tokens[token]
                return None
            return found.scopes

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def create_invoice(self, fields: Mapping[str, Any]) -> JsonObject:
        with self._lock:
            invoice = {"id": self._next_invoice_id, **fields, "status": "open"}
            self._invoices[self._next_invoice_id] = invoice
            self._next_invoice_id += 1
            return dict(invoice)

    def invoice(self, invoice_id: int) -> JsonObject | None:
        with self._lock:
            found = self._invoices.get(invoice_id)
            return dict(found) if found is not None else None

    def invoices(self, matching: Mapping[str, str]) -> list[JsonObject]:
        """The invoices whose fields equal every value of `matching`."""
        with self._lock:
            return [
                dict(invoice)
                for invoice in self._invoices.values()
                if all(invoice.get(key) == value for key, value in matching.items())
            ]

    def update_invoice(
        self, invoice_id: int, fields: Mapping[str, Any]
    ) -> JsonObject | None:
        with self._lock:
            found = self._invoices.get(invoice_id)
            if found is None:
                return None
            found.update(fields)
            return dict(found)

    def delete_invoice(self, invoice_id: int) -> bool:
        with self._lock:
            return self._invoices.pop(invoice_id, None) is not None

    def customer(self, name: str) -> JsonObject | None:
        """A customer's invoice count and open balance; None when it has none."""
        with self._lock:
            invoices = [
                (invoice["status"], invoice["amount"])
                for invoice in self._invoices.values()
                if invoice["customer"] == name
            ]
        if not invoices:
            return None

        unpaid = [amount for status, amount in invoices if status == "open"]
        return {
            "name": name,
            "invoices": len(invoices),
            "open_invoices": len(unpaid),
            "balance": sum(unpaid),
        }


def invoice_fields(data: Any, *, partial: bool) -> JsonObject:
    """The checked fields of an invoice body.

    Args:
        data: The parsed JSON body.
        partial: An update: any of ``customer``, ``amount`` and ``status``;
            otherwise a creation, which needs ``customer`` and ``amount``.

    Raises:
        InvalidInput: The body is not an acceptable invoice.
    """
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    allowed = ("customer", "amount", "status") if partial else ("customer", "amount")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0][:40]!r}")
    missing = [] if partial else [name for name in allowed if name not in data]
    if missing:
        raise InvalidInput(f"missing field {missing[0]!r}")

    customer = data.get("customer", "-")
    if not isinstance(customer, str) or not 1 <= len(customer) <= MAX_CUSTOMER_LENGTH:
        message = f"customer must be a string of 1 to {MAX_CUSTOMER_LENGTH} characters"
        raise InvalidInput(message)
    amount = data.get("amount", 0)
    is_number = isinstance(amount, int | float) and not isinstance(amount, bool)
    if not is_number or not math.isfinite(amount) or amount < 0:
        raise InvalidInput("amount must be a number of zero or more")
    if data.get("status", "open") not in INVOICE_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(INVOICE_STATUSES)}")
    return dict(data)
