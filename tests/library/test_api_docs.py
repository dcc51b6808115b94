"""tools/api_docs.py: what `make docs-check` fails on, shown on two small packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TOOL = ROOT / "tools" / "api_docs.py"

CLEAN = {
    "clean_pkg/__init__.py": '''
        """Shapes: see :class:`clean_pkg.shapes.Square`."""

        __all__ = ["Square"]


        def __getattr__(name: str):  # exported lazily, as traced_fargate does
            if name == "Square":
                from clean_pkg.shapes import Square

                return Square
            raise AttributeError(name)
    ''',
    "clean_pkg/base.py": '''
        """Bases."""


        class Shape:
            """A shape."""

            SIDES = 0
            """How many sides."""
    ''',
    "clean_pkg/shapes.py": '''
        """Built on :class:`~clean_pkg.base.Shape`."""

        from pathlib import Path

        from clean_pkg.base import Shape

        LIMIT = 10
        """The longest side."""


        class Square(Shape):
            """Compare :class:`Shape`, :data:`LIMIT`, :attr:`SIDES`, :meth:`area`,
            :class:`pathlib.Path`."""

            def __init__(self, side: int, where: Path | None = None) -> None:
                """
                :param side: the side's length. Default: none, it is required.
                :param where: a path. Default: None.
                """
                self.side = side

            def area(self) -> int:
                """The area."""
                return self.side**2
    ''',
}

BROKEN = {
    "broken_pkg/__init__.py": '''
        """One of each problem.

        .. include:: missing.md
        """

        __all__ = ["Missing", "refs"]
    ''',
    "broken_pkg/refs.py": '''
        """See :class:`NoSuchThing`, :meth:`Thing.nope` and :func:`pathlib.nope`."""

        from __future__ import annotations


        class Thing:
            """A thing."""

            def go(self, x: Undefined) -> None:
                """Go."""
    ''',
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = text.strip("\n").splitlines()
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        path.write_text("\n".join(line[indent:] for line in lines) + "\n")


def _api_docs(tmp_path: Path, package: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, str(TOOL), str(out), "--strict", "--package", package],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    return result, out


def test_clean_package_builds_with_links(tmp_path: Path) -> None:
    _write(tmp_path, CLEAN)
    result, out = _api_docs(tmp_path, "clean_pkg")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    page = (out / "clean_pkg" / "shapes.html").read_text()
    # An imported name links to where it is documented; `~` shows the last component only.
    assert '<code><a href="base.html#Shape">Shape</a></code>' in page
    assert '<code><a href="#LIMIT">LIMIT</a></code>' in page
    assert '<code><a href="#Square.SIDES">SIDES</a></code>' in page
    assert '<code><a href="#Square.area">area()</a></code>' in page
    assert "<code>pathlib.Path</code>" in page  # outside the package: plain code, no problem
    # A field's name ends at its own colon, not at the line's last one.
    assert "<li><strong>side</strong>:  the side's length. Default: none" in page
    assert "xref" not in page
    assert "xref" not in (out / "search.js").read_text()
    # The lazily exported construct is documented at the package root too.
    assert 'id="Square"' in (out / "clean_pkg.html").read_text()


def test_every_problem_fails_the_strict_build(tmp_path: Path) -> None:
    _write(tmp_path, BROKEN)
    result, _ = _api_docs(tmp_path, "broken_pkg")
    assert result.returncode == 1
    for expected in (
        "Cannot include 'missing.md'",
        "Found 'Missing' in broken_pkg.__all__, but it does not resolve",
        "Error parsing type annotation Undefined for broken_pkg.refs.Thing.go",
        "broken reference: broken_pkg.refs: `NoSuchThing` does not resolve there",
        "broken reference: broken_pkg.refs: `Thing.nope()` does not resolve there",
        "broken reference: broken_pkg.refs: `pathlib.nope()` does not resolve there",
        "6 problem(s)",
    ):
        assert expected in result.stderr


def test_a_module_that_fails_to_import_fails_the_build(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "crash_pkg/__init__.py": '"""Fine."""',
            "crash_pkg/boom.py": 'raise RuntimeError("boom at import")',
        },
    )
    result, _ = _api_docs(tmp_path, "crash_pkg")
    assert result.returncode == 1
    assert "RuntimeError: boom at import" in result.stderr
