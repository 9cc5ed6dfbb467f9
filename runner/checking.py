"""``runner check``: validate and render every file, send nothing.

Prints every error of every file as ``path:line:column: message``, then one
summary line, and returns 0 when all files are valid, 2 otherwise. Nothing
here imports httpx: ``check`` runs in pre-commit hooks and editors, where
start-up time is most of its cost.
"""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from runner.errors import InputError
from runner.exits import ExitStatus
from runner.loading import load_paths, parse_var_options, read_env_files
from runner.preflight import unsafe_token_urls
from runner.secrets import Redactor
from runner.templates import Templates

__all__ = ["check_command"]


def check_command(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """Check the files and folders of ``args.paths``; returns the exit status.

    Args:
        args: ``paths`` (files and folders), ``env_file`` (paths of env
            files) and ``variables`` (``NAME=VALUE`` items of ``--var``).
        out: Where errors and the summary are written.
        err: Unused; kept so that every command takes the same streams.
    """
    del err
    errors: list[InputError] = []
    env = dict(os.environ)
    try:
        env.update(read_env_files(args.env_file))
    except InputError as exc:
        errors.append(exc)
    try:
        variables = parse_var_options(args.variables)
    except InputError as exc:
        errors.append(exc)
        variables = {}

    redactor = Redactor()
    templates = Templates(env, redactor)
    result = load_paths(
        args.paths,
        env=env,
        variables=variables,
        redactor=redactor,
        templates=templates,
        for_run=False,
    )
    errors += result.errors
    # What `run` refuses before sending is invalid input here too.
    errors += unsafe_token_urls(result.connections.values())

    for error in errors:
        out.write(redactor.redact(error.render()) + "\n")
    out.write(_summary(errors, result.files_checked) + "\n")
    return ExitStatus.INVALID if errors else ExitStatus.OK


def _summary(errors: list[InputError], files: int) -> str:
    checked = f"{files} file{'s' if files != 1 else ''}"
    if not errors:
        return f"{checked} checked, all valid"
    failing = {error.location.file for error in errors if error.location is not None}
    count = len(errors)
    return f"{count} error{'s' if count != 1 else ''} in {len(failing)} of {checked}"
