"""Writes ``src/biotech_ma_db/sync/repositories.py``: typed Protocols of the blocking proxies.

``python tools/generate_sync_protocols.py`` rewrites the module; ``--check`` exits 1 when
it is out of date (``tests/unit/test_sync_protocols.py`` runs the same comparison).  It
lives outside the package, as SQLAlchemy's ``tools/generate_proxy_methods.py`` does, so
that it runs even when the module it writes no longer imports.

For every repository class (and its generic bases) it emits a ``Sync<Name>`` Protocol
whose methods are the class's own public coroutine methods, with the same parameters
and annotations, copied from the source text, and the awaited type as the return type.
The imports those annotations need are the ones the repository modules use.  The output
goes through ``ruff`` (import order and formatting), as a hand-written module would.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import inspect
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from biotech_ma_db import repositories

__all__ = ["TARGET", "generate", "main"]

TARGET = Path(__file__).resolve().parents[1] / "src" / "biotech_ma_db" / "sync" / "repositories.py"
_HEADER = '''"""Typed Protocols of the synchronous repository proxies (generated: do not edit).

One ``Sync<Repository>`` per repository: its public coroutine methods as blocking calls,
with the same parameters, returning what the coroutine returns.  Written by
``tools/generate_sync_protocols.py`` from the repositories' source; a unit test
fails when it is out of date.
"""

from __future__ import annotations

from typing import Protocol
'''


@dataclass
class _Imports:
    """The import statements the emitted annotations need, by bound name."""

    modules: dict[str, str] = field(default_factory=dict)  # alias -> module
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # alias -> (module, name)

    def render(self) -> str:
        lines = [
            f"import {module}" if module == alias else f"import {module} as {alias}"
            for alias, module in sorted(self.modules.items())
        ]
        by_module: dict[str, list[str]] = {}
        for alias, (module, name) in self.names.items():
            by_module.setdefault(module, []).append(name if name == alias else f"{name} as {alias}")
        lines += [
            f"from {module} import {', '.join(sorted(names))}"
            for module, names in sorted(by_module.items())
        ]
        return "\n".join(lines)


def _classes() -> list[type]:
    """Every repository class and its repository bases, bases first."""
    found: list[type] = []
    for name in repositories.__all__:
        candidate = getattr(repositories, name)
        if isinstance(candidate, type) and issubclass(candidate, repositories.ReadRepository):
            for cls in reversed(candidate.__mro__):
                if cls.__module__.startswith(repositories.__name__) and cls not in found:
                    found.append(cls)
    return found


def _is_base(cls: type) -> bool:
    return getattr(repositories, cls.__name__, None) is not cls


def _own_coroutines(cls: type) -> list[str]:
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    ]


def _module_bindings(module: ModuleType) -> dict[str, tuple[str, str | None]]:
    """Names bound at the top of ``module`` (and under ``TYPE_CHECKING``) by imports or defs.

    ``alias -> (module, name)`` for ``from module import name as alias``,
    ``alias -> (module, None)`` for ``import module as alias``.
    """
    tree = ast.parse(inspect.getsource(module))
    bindings: dict[str, tuple[str, str | None]] = {}

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    bindings[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bindings[alias.asname or alias.name.split(".")[0]] = (alias.name, None)
            elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                bindings[node.name] = (module.__name__, node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        bindings[target.id] = (module.__name__, target.id)
            elif isinstance(node, ast.If):
                visit(node.body)

    visit(tree.body)
    return bindings


def _root_names(expression: ast.expr) -> Iterator[str]:
    """Names an annotation refers to (the first part of dotted names)."""
    for node in ast.walk(expression):
        if isinstance(node, ast.Name):
            yield node.id


def _need(imports: _Imports, bindings: dict[str, tuple[str, str | None]], name: str) -> None:
    if name in imports.modules or name in imports.names:
        return
    bound = bindings.get(name)
    if bound is None:
        if hasattr(builtins, name):
            return
        raise LookupError(f"cannot tell where {name!r} comes from")
    module, attribute = bound
    if attribute is None:
        imports.modules[name] = module
    else:
        imports.names[name] = (module, attribute)


def _class_node(cls: type) -> ast.ClassDef:
    module = sys.modules[cls.__module__]
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node
    raise LookupError(f"no class {cls.__name__} in {module.__name__}")


def _arguments(args: ast.arguments) -> str:
    """The parameter list with every default shown as ``...`` (a stub's convention)."""
    parts: list[str] = []

    def one(arg: ast.arg, default: ast.expr | None) -> str:
        text = arg.arg
        if arg.annotation is not None:
            text += f": {ast.unparse(arg.annotation)}"
        if default is not None:
            text += " = ..." if arg.annotation is not None else "=..."
        return text

    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    for index, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        parts.append(one(arg, default))
        if args.posonlyargs and index == len(args.posonlyargs) - 1:
            parts.append("/")
    if args.vararg is not None:
        parts.append("*" + one(args.vararg, None))
    elif args.kwonlyargs:
        parts.append("*")
    parts += [one(arg, d) for arg, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg is not None:
        parts.append("**" + one(args.kwarg, None))
    return ", ".join(parts)


def _summary(node: ast.AsyncFunctionDef) -> str | None:
    docstring = ast.get_docstring(node)
    return docstring.split("\n\n")[0].replace("\n", " ").strip() if docstring else None


def _bases(
    cls: type,
    node: ast.ClassDef,
    generated: set[str],
    imports: _Imports,
    bindings: dict[str, tuple[str, str | None]],
) -> list[str]:
    """``Sync<Base>[args]`` for each generated base, then ``Protocol`` (generic or not)."""
    bases: list[str] = []
    for base in node.bases:
        subscript = base.slice if isinstance(base, ast.Subscript) else None
        base_name = ast.unparse(base.value if isinstance(base, ast.Subscript) else base)
        if base_name not in generated:
            continue
        text = f"Sync{base_name}"
        if subscript is not None:
            for name in _root_names(subscript):
                _need(imports, bindings, name)
            text += f"[{ast.unparse(subscript)}]"
        bases.append(text)
    parameters = getattr(cls, "__parameters__", ())
    for parameter in parameters:
        _need(imports, bindings, parameter.__name__)
    names = ", ".join(p.__name__ for p in parameters)
    bases.append(f"Protocol[{names}]" if parameters else "Protocol")
    return bases


def _protocol(cls: type, generated: set[str], imports: _Imports) -> str:
    module = sys.modules[cls.__module__]
    bindings = _module_bindings(module)
    source_lines = inspect.getsource(module).splitlines()
    node = _class_node(cls)
    bases = _bases(cls, node, generated, imports, bindings)
    body: list[str] = []
    wanted = set(_own_coroutines(cls))
    for item in node.body:
        if not isinstance(item, ast.AsyncFunctionDef) or item.name not in wanted:
            continue
        for expression in [
            *(a.annotation for a in ast.walk(item.args) if isinstance(a, ast.arg)),
            item.returns,
        ]:
            if expression is not None:
                for name in _root_names(expression):
                    _need(imports, bindings, name)
        returns = ast.unparse(item.returns) if item.returns is not None else "None"
        ignore = ""
        if "type: ignore[override]" in source_lines[item.lineno - 1]:
            ignore = "  # type: ignore[override]\n"
        summary = _summary(item)
        # A docstring alone is a complete body (a stub's ``...`` when there is none).
        doc = f'"""{summary}"""' if summary else "..."
        body.append(f"def {item.name}({ignore}{_arguments(item.args)}) -> {returns}:\n    {doc}\n")
    summary = f'"""Blocking calls of :class:`~biotech_ma_db.repositories.{cls.__name__}`."""\n'
    members = "\n".join(body)
    return f"class Sync{cls.__name__}({', '.join(bases)}):\n" + textwrap.indent(
        summary + ("\n" + members if members else ""), "    "
    )


def _ruff(source: str) -> str:
    command = [sys.executable, "-m", "ruff"]
    stdin = ["--stdin-filename", str(TARGET), "-"]
    fixed = subprocess.run(  # noqa: S603 — our own interpreter and fixed arguments
        [*command, "check", "--fix-only", "--select", "I", "--quiet", *stdin],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return subprocess.run(  # noqa: S603 — our own interpreter and fixed arguments
        [*command, "format", "--quiet", *stdin],
        input=fixed,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def generate() -> str:
    """The source of :mod:`biotech_ma_db.sync.repositories`, formatted."""
    # A class without public coroutines of its own (a base of plumbing) gets no Protocol.
    classes = [cls for cls in _classes() if _own_coroutines(cls) or not _is_base(cls)]
    generated = {cls.__name__ for cls in classes}
    imports = _Imports()
    protocols = [_protocol(cls, generated, imports) for cls in classes]
    names = sorted(f"Sync{cls.__name__}" for cls in classes)
    exports = "__all__ = [\n" + "".join(f'    "{name}",\n' for name in names) + "]\n"
    source = "\n\n".join(
        [_HEADER + imports.render() + "\n", exports, *(p.rstrip() + "\n" for p in protocols)]
    )
    return _ruff(source)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the module, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(prog="python tools/generate_sync_protocols.py")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    source = generate()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if args.check:
        return 0 if source == current else 1
    if source != current:
        TARGET.write_text(source, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
