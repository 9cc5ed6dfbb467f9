"""runner: a declarative HTTP request runner with OAuth2 Client Credentials.

The package keeps its import light on purpose: `runner check` runs in
pre-commit hooks and editors, so nothing here imports what only sending
needs (httpx).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
