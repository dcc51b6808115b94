"""The one error type the library raises for bad props."""

from __future__ import annotations

from collections.abc import Iterable


class InvalidPropsError(ValueError):
    """Raised at synth when construct props are invalid.

    Carries one line per problem so that an app can print them all at once
    (``str(error)``) instead of a traceback.
    """

    def __init__(self, construct: str, problems: Iterable[str]) -> None:
        self.construct = construct
        """The path of the construct (or the name of the object) whose props are invalid."""
        self.problems: tuple[str, ...] = tuple(problems)
        """One line per problem, each naming the prop."""
        super().__init__("\n".join(f"{construct}: {p}" for p in self.problems))


def raise_if_problems(construct: str, problems: list[str]) -> None:
    """Raise :class:`InvalidPropsError` when ``problems`` is not empty."""
    if problems:
        raise InvalidPropsError(construct, problems)
