"""Which suites and requests a run sends: ``--tag`` and ``--shard K/N``.

Tags pick requests: a suite whose ``tags`` hold any of the given tags runs
whole, otherwise only its requests whose ``tags`` hold one run, and a suite
with nothing picked does not run at all. Without ``--tag`` everything is
picked.

Shards then split the picked suite files between CI jobs (see `Shard`), so
every job must be given the same paths and the same ``--tag`` options.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.loading import LoadedRequest, LoadedSuite

__all__ = ["Selected", "Selection", "Shard", "select"]

_SHARD = re.compile(r"(\d{1,6})/(\d{1,6})")


@dataclass(frozen=True, slots=True)
class Selected:
    """A suite that runs, and which of its requests do.

    Attributes:
        suite: The suite as loaded.
        picked: The `LoadedRequest.index` of every request that runs.
    """

    suite: LoadedSuite
    picked: frozenset[int]

    def runs(self, request: LoadedRequest) -> bool:
        """Whether `request` (one of this suite's) is sent."""
        return request.index in self.picked

    @property
    def deselected(self) -> int:
        """How many of its requests ``--tag`` left out."""
        return len(self.suite.requests) - len(self.picked)

    @property
    def sends(self) -> int:
        """How many sends its picked requests make, repeats included."""
        requests = self.suite.requests
        return sum(request.model.repeat for request in requests if self.runs(request))


@dataclass(frozen=True, slots=True)
class Selection:
    """What ``--tag`` left of the loaded suites.

    Attributes:
        suites: The suites with at least one picked request, in load order.
        deselected: Requests (as written, repeats not counted) that
            ``--tag`` left out, those of suites left out entirely included.
    """

    suites: tuple[Selected, ...]
    deselected: int


def select(suites: Sequence[LoadedSuite], tags: Collection[str]) -> Selection:
    """Pick the suites and requests that ``--tag`` asks for (all, without tags).

    Args:
        suites: The loaded suites, in the order they would run.
        tags: The ``--tag`` values; empty picks every request.
    """
    wanted = frozenset(tags)
    chosen: list[Selected] = []
    deselected = 0
    for suite in suites:
        if not wanted or suite.tags & wanted:
            picked = frozenset(request.index for request in suite.requests)
        else:
            picked = frozenset(
                request.index
                for request in suite.requests
                if wanted.intersection(request.model.tags)
            )
        deselected += len(suite.requests) - len(picked)
        if picked:
            chosen.append(Selected(suite, picked))
    return Selection(tuple(chosen), deselected)


@dataclass(frozen=True, slots=True)
class Shard:
    """``--shard K/N``: this job runs the K-th of N disjoint parts of the files.

    The rule: sort the suite files by their resolved path relative to the
    current folder (with ``/`` separators, so Linux, macOS and Windows jobs
    agree), then deal them out round-robin; file ``i`` (from 0) goes to
    shard ``i % N + 1``.

    Round-robin over a sorted list keeps the shards within one file of each
    other in size, but adding or removing a file moves others to a
    different shard. A stable hash of each path would keep files in place
    as the collection changes, at the price of uneven shards for the small
    collections most projects have. Since every CI job of one pipeline sees
    the same checkout, balance is worth more here than stability.

    Attributes:
        index: K, from 1.
        count: N.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Read ``K/N``.

        Raises:
            ValueError: It is not two whole numbers with 1 <= K <= N.
        """
        match = _SHARD.fullmatch(text.strip())
        if match is None:
            message = f"expected K/N, two whole numbers such as 1/2, got {text!r}"
            raise ValueError(message)
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= index <= count:
            message = f"expected K/N with 1 <= K <= N, got {text!r}"
            raise ValueError(message)
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def pick(self, suites: Sequence[Selected], *, cwd: Path) -> list[Selected]:
        """The suites of this shard, in their original order.

        Args:
            suites: Every selected suite of the run, one per file.
            cwd: The folder paths are made relative to (the current one).
        """
        mine = self.part([item.suite.path for item in suites], cwd=cwd)
        return [item for item in suites if item.suite.path in mine]

    def part(self, paths: Iterable[Path], *, cwd: Path) -> frozenset[Path]:
        """Which of `paths` (each a different file) fall in this shard."""
        keyed = sorted((_shard_key(path, cwd), path) for path in paths)
        return frozenset(
            path
            for number, (_, path) in enumerate(keyed)
            if number % self.count == self.index - 1
        )


def _shard_key(path: Path, cwd: Path) -> str:
    # os.path.relpath, unlike Path.relative_to, also reaches files outside
    # cwd (``../suites``), which is how CI jobs often name them.
    return Path(os.path.relpath(path.resolve(), cwd.resolve())).as_posix()
