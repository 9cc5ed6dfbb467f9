"""The package's public names: deliberate, importable, and light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runner


def test_public_names_are_pinned() -> None:
    """A change to the public surface is a change to this list too."""
    assert runner.__all__ == [
        "ExitStatus",
        "InputError",
        "Redactor",
        "RunOptions",
        "RunnerError",
        "SendError",
        "TemplateError",
        "TokenError",
        "__version__",
        "execute",
        "main",
    ]


def test_every_public_name_imports_from_its_module() -> None:
    for name in runner.__all__:
        value = getattr(runner, name)
        assert value is not None
        if name != "__version__":
            assert getattr(value, "__name__", name) == name


def test_importing_the_package_imports_none_of_its_modules() -> None:
    code = (
        "import sys, runner; "
        "print(sorted(m for m in sys.modules if m.startswith('runner.')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "[]"


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="nothing_here"):
        getattr(runner, "nothing_here")  # noqa: B009
