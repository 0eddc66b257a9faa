"""The one exception type of openretina_data: a message a person can act on."""

from __future__ import annotations

from os import PathLike


class DataError(ValueError):
    """Bad input data, explained: which file, which key, what is wrong and how to fix it.

    The message reads ``"<file>: <key>: <problem>. Fix: <fix>"`` so the command line can print it
    as is. The parts stay available as attributes for programs that want them.
    """

    def __init__(
        self,
        file: str | PathLike[str] | None,
        key: str | None,
        problem: str,
        fix: str,
    ) -> None:
        self.file = None if file is None else str(file)
        self.key = key
        self.problem = problem.rstrip(".")
        self.fix = fix.rstrip(".")
        where = ": ".join(part for part in (self.file, self.key) if part)
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{self.problem}. Fix: {self.fix}.")

    def __reduce__(self):  # keep the four parts when pickled (e.g. raised in a worker process)
        return (type(self), (self.file, self.key, self.problem, self.fix))
