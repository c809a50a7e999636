"""Errors that users see: one line naming the file, the field and the rule broken."""

from __future__ import annotations


class ScenarioError(ValueError):
    """A scenario file (or its contents) breaks a rule.

    The message is a single line per problem, ``file: field: rule``, for
    example ``scenarios/x.toml: investors[1].commitment: must be > 0, got -5``.
    ``problems`` holds every problem found, so ``sibsim validate`` can list
    them all at once instead of stopping at the first.
    """

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class OutputError(RuntimeError):
    """An output directory cannot be written safely (e.g. it holds another scenario's run)."""


class InsufficientMemoryError(MemoryError):
    """A run would need more memory than the machine has available (estimated before it starts).

    The message is one line with the estimate and the way out, e.g. the largest number of paths
    that fits; ``needed`` and ``available`` are in bytes, ``max_paths`` is that largest number.
    """

    def __init__(self, message: str, needed: int, available: int, max_paths: int):
        super().__init__(message)
        self.needed, self.available, self.max_paths = needed, available, max_paths
