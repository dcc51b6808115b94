"""Build the construct library's API reference (HTML) from its docstrings with pdoc.

usage: api_docs.py OUTPUT_DIR [--strict] [--quick] [--package NAME]

Docstrings are reStructuredText (``:param x:``, ``:class:`Name```). Around pdoc, this script

- resolves the package's lazy exports first: ``traced_fargate`` loads its constructs on first
  attribute access, and pdoc only sees names already in a module's ``__dict__``;
- documents every public submodule, not only what the package's ``__all__`` lists;
- reads a field's name up to its own colon (pdoc reads ``:param cpu: units. Default: 256`` as
  a parameter named ``cpu: units. Default``);
- checks every cross-reference role (``:class:``, ``:meth:``, ``:attr:`` ...): it must become a
  link in the rendered page or name an importable object outside the library. A name that
  the docstring's module or class imports is linked to where it is documented; ``~`` shows
  the last component only, as in Sphinx.

Every warning (pdoc's own: a module that fails to import, an ``__all__`` name that does not
resolve, an annotation that does not evaluate, a missing ``.. include::`` file) and every
broken reference is printed; with ``--strict`` any of them makes the exit status 1.
"""

from __future__ import annotations

import argparse
import builtins
import importlib
import inspect
import pkgutil
import re
import shutil
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pdoc
import pdoc.doc_ast
import pdoc.docstrings
import pdoc.render
import pdoc.render_helpers
import pdoc.search
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

PACKAGE = "traced_fargate"

# Sphinx's Python-domain roles, as pdoc's reST conversion recognises them.
ROLE = re.compile(
    r"(?::py)?:(?P<kind>mod|func|data|const|class|meth|attr|exc|obj):`(?P<body>[^`]+)`"
)
# Left after each converted role so that its rendered code span can be found again.
MARK, SHORT_MARK = "<!--xref-->", "<!--xref~-->"
MARKED_CODE = re.compile(
    r"<code>(?P<inner>(?:(?!</?code>).)*)</code>(?P<mark><!--xref~?-->)", re.DOTALL
)
ANCHOR = re.compile(r'<a href="(?P<href>[^"]*)">(?P<text>.*?)</a>', re.DOTALL)
TAG = re.compile(r"<[^>]+>")
FIELD = re.compile(r"^(?P<head>:(?:param|type|raises)[ ]+[^:\n]+:)(?P<rest>.*)$", re.MULTILINE)
COLON = "\ue000"  # stands in for a field body's colons while pdoc converts the fields


def mark_roles(docstring: str) -> str:
    """``:class:`a.B``` -> ```a.B```, ``:meth:`c``` -> ```c()```, each followed by a mark."""

    def replace(m: re.Match[str]) -> str:
        body = m["body"].strip()
        if body.endswith(">") and "<" in body:  # :class:`title <target>`
            body = body[body.rindex("<") + 1 : -1]
        target = body.lstrip("!~")
        if m["kind"] in ("meth", "func") and not target.endswith("()"):
            target += "()"
        return f"`{target}`{SHORT_MARK if body.startswith('~') else MARK}"

    return ROLE.sub(replace, docstring)


def protect_field_colons(docstring: str) -> str:
    return FIELD.sub(lambda m: m["head"] + m["rest"].replace(":", COLON), docstring)


def resolve_lazy_exports(package: str, problems: dict[str, None]) -> None:
    module = importlib.import_module(package)
    for name in getattr(module, "__all__", ()):
        if name in vars(module):
            continue
        try:
            value = getattr(module, name)
        except AttributeError:
            continue  # a submodule, or a name pdoc reports as unresolved
        except Exception:  # the module behind a lazy export fails to import
            problems[f"{package}.{name}: {traceback.format_exc()}"] = None
            continue
        setattr(module, name, value)


def module_specs(package: str) -> list[str]:
    """The package and the public submodules that pdoc would leave out.

    pdoc walks a package's submodules itself, but only those in its ``__all__`` when it has
    one; ``traced_fargate.__all__`` lists the constructs, not the modules.
    """
    module = importlib.import_module(package)
    listed = getattr(module, "__all__", None)
    if listed is None:
        return [package]
    children = pkgutil.iter_modules(module.__path__)
    public = sorted(c.name for c in children if not c.name.startswith("_"))
    return [package, *(f"{package}.{name}" for name in public if name not in listed)]


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def _scopes(module: Any, qualname: str) -> Iterator[Any]:
    """The classes enclosing ``qualname`` (innermost first), the module, the builtins."""
    chain = [module]
    for part in qualname.split(".") if qualname else ():
        obj = getattr(chain[-1], part, None)
        if obj is None:
            break
        chain.append(obj)
    yield from (obj for obj in reversed(chain) if isinstance(obj, type))
    yield module
    yield builtins


def _canonical(obj: Any) -> str | None:
    if inspect.ismodule(obj):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}.{qualname}"
    return None


def _import_longest(parts: list[str]) -> tuple[Any, list[str]] | None:
    for i in range(len(parts), 0, -1):
        try:
            return importlib.import_module(".".join(parts[:i])), parts[i:]
        except ImportError:
            continue
    return None


def python_target(module: Any, qualname: str, target: str) -> str | None:
    """The canonical dotted name that ``target`` denotes where the docstring was written."""
    parts = target.removesuffix("()").split(".")
    found = next(((s, parts) for s in _scopes(module, qualname) if hasattr(s, parts[0])), None)
    if found is None:
        found = _import_longest(parts)
    if found is None:
        return None
    obj, path = found
    name = _canonical(obj)
    for part in path:
        if name is None or not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
        # A constant or a property has no name of its own: it is named by where it lives.
        name = _canonical(obj) or f"{name}.{part}"
    return name


def skip_foreign_sources(package: str) -> None:
    """Let pdoc read the library's source only.

    pdoc parses the source of every base class for attribute docstrings. The bases of the
    constructs live in aws-cdk-lib, whose modules are tens of thousands of lines each: parsing
    them costs seconds and adds nothing to pages that list inherited members by name.
    """
    get_source = pdoc.doc_ast.get_source

    def library_source(obj: Any) -> str:
        if _in_package(getattr(inspect.getmodule(obj), "__name__", ""), package):
            return get_source(obj)
        return ""

    pdoc.doc_ast.get_source = library_source


def install_checks(problems: dict[str, None], package: str) -> None:
    rst = pdoc.docstrings.rst

    def rst_marked(contents: str, source_file: Path | None) -> str:
        return rst(protect_field_colons(mark_roles(contents)), source_file).replace(COLON, ":")

    pdoc.docstrings.rst = rst_marked

    # The search index holds each docstring as HTML too, without links: drop the marks there.
    to_markdown = pdoc.render_helpers.to_markdown

    def to_markdown_unmarked(docstring: str, module: Any, default_docformat: str) -> str:
        converted = to_markdown(docstring, module, default_docformat)
        return converted.replace(MARK, "").replace(SHORT_MARK, "")

    vars(pdoc.search)["to_markdown"] = to_markdown_unmarked

    linkify = pdoc.render.env.filters["linkify"]

    @pass_context
    def linkify_checked(
        context: Context, code: str, namespace: str = "", shorten: bool = True
    ) -> Markup:
        html = str(linkify(context, code, namespace=namespace, shorten=shorten))
        if "<!--xref" not in html:
            return Markup(html)
        module = context["module"]
        # A re-exported member's docstring refers to names where it was written.
        doc = module.get(namespace) if namespace else None
        source, qualname = doc.taken_from if doc else (module.fullname, "")
        where = f"{source}.{qualname}" if qualname else source

        def check(m: re.Match[str]) -> str:
            inner, short = m["inner"], m["mark"] == SHORT_MARK
            anchor = ANCHOR.search(inner)
            target = TAG.sub("", inner)
            problem = None
            if anchor is None:
                canonical = python_target(sys.modules.get(source, module.obj), qualname, target)
                if canonical is None:
                    problem = "does not resolve there"
                elif _in_package(canonical, package):
                    linked = str(linkify(context, f"<code>{canonical}</code>", shorten=False))
                    anchor = ANCHOR.search(linked)
                    if anchor is None:
                        problem = f"is {canonical}, which the API reference does not document"
            if problem:
                problems[f"broken reference: {where}: `{target}` {problem}"] = None
            if anchor is None:  # unknown, or outside the library: plain code
                return f"<code>{inner}</code>"
            text = target.rpartition(".")[2] if short else target
            return f'<code><a href="{anchor["href"]}">{text}</a></code>'

        return Markup(MARKED_CODE.sub(check, html))

    pdoc.render.env.filters["linkify"] = linkify_checked


def version_of(package: str) -> str:
    try:
        version = importlib.import_module(f"{package}._version").__version__
    except ImportError:
        version = getattr(importlib.import_module(package), "__version__", "")
    return str(version)


def build(
    output: Path, package: str = PACKAGE, *, show_source: bool = True, search: bool = True
) -> list[str]:
    """Render the reference into ``output`` (replaced); return the problems found."""
    problems: dict[str, None] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skip_foreign_sources(package)
        install_checks(problems, package)
        pdoc.render.configure(
            docformat="restructuredtext",
            show_source=show_source,
            search=search,
            footer_text=f"{package} {version_of(package)}".strip(),
        )
        resolve_lazy_exports(package, problems)
        shutil.rmtree(output, ignore_errors=True)
        pdoc.pdoc(*module_specs(package), output_directory=output)
    warned = {f"{w.category.__name__}: {w.message}": None for w in caught}
    return [*warned, *problems]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="directory for the HTML (replaced)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 on any warning or broken reference"
    )
    parser.add_argument("--package", default=PACKAGE, help=f"import name (default {PACKAGE})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="leave out the highlighted sources and the search index (checks stay the same)",
    )
    args = parser.parse_args()
    problems = build(args.output, args.package, show_source=not args.quick, search=not args.quick)
    for problem in problems:
        print(f"api docs: {problem}", file=sys.stderr)
    if problems and args.strict:
        print(f"api docs: {len(problems)} problem(s), see above", file=sys.stderr)
        return 1
    print(f"api docs: {args.output / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
