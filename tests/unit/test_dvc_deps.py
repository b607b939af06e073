"""Every dvc.yaml stage depends on all the `hivid` code its command runs.

A stage whose code changed but whose deps do not name that code is reported "unchanged" by
`dvc status` and skipped by the nightly: the model would be tagged with a git commit whose code
never ran. This test derives, from each stage's `cmd` (`hivid <command> [<subcommand>]`), the
source files the command can execute, and fails when the stage's deps do not cover one of them.

How the files are derived (an AST walk over src/hivid, no import): start at the click command's
function; a reached function or class contributes the `hivid` imports inside its body (lazy
imports included), the module-level functions and classes of its module it names, the config
classes it loads by name (`load_section(..., "<section>")` through `config.SECTIONS`), and its
module's module-level imports (what importing the module executes, packages' `__init__` too).
Functions of a module that nothing reached are not followed: a lazy import inside another CLI
command does not make every stage depend on it.
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def module_file(module: str) -> Path | None:
    base = SRC / Path(*module.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    defs: dict[str, ast.AST] = field(default_factory=dict)
    # module-level `from hivid.x import y [as z]` / `import hivid.x`: local name -> (module, symbol)
    imported: dict[str, tuple[str, str | None]] = field(default_factory=dict)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(node: ast.AST, module: str) -> list[tuple[str, str | None, str]]:
    """(target module, symbol or None, local name) for each hivid import statement in ``node``
    (the node itself when it is one), skipping `if TYPE_CHECKING:` blocks."""
    out: list[tuple[str, str | None, str]] = []

    def visit(n: ast.AST) -> None:
        if _is_type_checking(n):
            return
        if isinstance(n, ast.ImportFrom):
            target = n.module or ""
            assert not n.level, f"{module}: relative import (the walk expects absolute ones)"
            if target == "hivid" or target.startswith("hivid."):
                for a in n.names:
                    out.append((target, a.name, a.asname or a.name))
        elif isinstance(n, ast.Import):
            for a in n.names:
                if a.name == "hivid" or a.name.startswith("hivid."):
                    out.append((a.name, None, a.asname or a.name.split(".")[0]))
        for child in ast.iter_child_nodes(n):
            visit(child)

    visit(node)
    return out


@cache
def load(module: str) -> Module | None:
    path = module_file(module)
    if path is None:
        return None
    tree = ast.parse(path.read_text(), str(path))
    mod = Module(module, path, tree)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            mod.defs[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    mod.defs[t.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom | ast.If | ast.Try):
            for target, symbol, local in _imports(node, module):
                mod.imported[local] = (target, symbol)
    return mod


@cache
def sections() -> dict[str, str]:
    """config.SECTIONS read from its source: section -> config module."""
    tree = ast.parse((SRC / "hivid" / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "SECTIONS" and node.value is not None:
                value = ast.literal_eval(node.value)
                return {k: v.split(":")[0] for k, v in value.items()}
    raise AssertionError("config.SECTIONS not found")


def _names(node: ast.AST, mod: Module) -> list[tuple[str, str | None]]:
    """Module-level definitions and imported symbols of ``mod`` that ``node`` names."""
    out: list[tuple[str, str | None]] = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            if n.id in mod.defs:
                out.append((mod.name, n.id))
            elif n.id in mod.imported:
                out.append(mod.imported[n.id])
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            # `import hivid.x as m` then `m.f`
            target = mod.imported.get(n.value.id)
            if target and target[1] is None:
                out.append((target[0], n.attr))
    return out


def reachable_files(module: str, symbol: str | None) -> set[Path]:
    """Source files that running ``module.symbol`` (or importing ``module``) can execute."""
    seen: set[tuple[str, str | None]] = set()
    files: set[Path] = set()
    todo: list[tuple[str, str | None]] = [(module, symbol)]
    while todo:
        mod_name, sym = todo.pop()
        if (mod_name, sym) in seen:
            continue
        seen.add((mod_name, sym))
        mod = load(mod_name)
        if mod is None:
            # `from hivid.pkg import submodule`: the symbol is a module
            parent = mod_name.rpartition(".")[0]
            if parent and load(parent) is not None:
                todo.append((parent, None))
            continue
        files.add(mod.path)
        parts = mod_name.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append((".".join(parts[:i]), None))
        if sym is None:
            # importing the module runs its imports and its top-level statements (decorators,
            # constants), not the bodies of its functions
            for target, imported_sym in mod.imported.values():
                todo.append((target, None))
                if imported_sym and load(f"{target}.{imported_sym}") is not None:
                    todo.append((f"{target}.{imported_sym}", None))
            for node in mod.tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    parts_run: list[ast.AST] = list(node.decorator_list)
                    if not isinstance(node, ast.ClassDef):
                        parts_run += node.args.defaults
                else:
                    parts_run = [node]
                for part in parts_run:
                    todo.extend(_names(part, mod))
            continue
        if sym not in mod.defs:
            if sym in mod.imported:  # a re-export
                todo.append(mod.imported[sym])
            elif load(f"{mod_name}.{sym}") is not None:  # a submodule
                todo.append((f"{mod_name}.{sym}", None))
            todo.append((mod_name, None))
            continue
        todo.append((mod_name, None))
        node = mod.defs[sym]
        for target, imported_sym, _ in _imports(node, mod_name):
            todo.append((target, imported_sym))
        todo.extend(x for x in _names(node, mod) if x != (mod_name, sym))
        for n in ast.walk(node):
            if (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name)
                and n.func.id == "load_section"
            ):
                for arg in n.args:
                    if isinstance(arg, ast.Constant) and arg.value in sections():
                        todo.append((sections()[arg.value], None))
                        todo.append(("hivid.config", "section_class"))
    return files


def _command_name(dec: ast.expr, func: ast.FunctionDef) -> tuple[str, str] | None:
    """(group variable, command name) of a `@<group>.command(...)` decorator."""
    if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)):
        return None
    if dec.func.attr not in ("command", "group") or not isinstance(dec.func.value, ast.Name):
        return None
    name = func.name.replace("_", "-")
    if dec.args and isinstance(dec.args[0], ast.Constant):
        name = str(dec.args[0].value)
    return dec.func.value.id, name


def find_command(module: str, words: list[str], group: str = "main") -> tuple[str, str, int]:
    """(module, function, words used) of the click command ``words`` resolve to."""
    mod = load(module)
    assert mod is not None, module
    for node in mod.tree.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                found = _command_name(dec, node)
                if found == (group, words[0]):
                    return module, node.name, 1
    # a group added from another module: `main.add_command(<imported group>)`
    for node in ast.walk(mod.tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_command"
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in mod.imported
        ):
            target, sym = mod.imported[node.args[0].id]
            sub = load(target)
            if sub is None or sym is None or sym not in sub.defs:
                continue
            g = sub.defs[sym]
            assert isinstance(g, ast.FunctionDef)
            names = {_command_name(d, g) for d in g.decorator_list} - {None}
            if any(n is not None and n[1] == words[0] for n in names):
                inner, fn, used = find_command(target, words[1:], sym)
                return inner, fn, used + 1
    raise AssertionError(f"no click command {words} in {module}")


def stage_entry(cmd: str) -> tuple[str, str]:
    words = [w for w in shlex.split(cmd) if not w.startswith("-")]
    assert words[0] == "hivid", f"stage cmd {cmd!r} is not a hivid command"
    module, fn, _ = find_command("hivid.cli.app", words[1:])
    return module, fn


def stage_files(cmd: str) -> set[Path]:
    """What `hivid ...` runs: the console script's `hivid.cli:main`, then the command."""
    return reachable_files("hivid.cli", "main") | reachable_files(*stage_entry(cmd))


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_the_code_it_runs(stage: str) -> None:
    entry = STAGES[stage]
    files = stage_files(entry["cmd"])
    need = sorted(p.relative_to(REPO).as_posix() for p in files)
    deps = [str(d) for d in entry.get("deps", [])]
    missing = [p for p in need if not covered(p, deps)]
    assert not missing, f"dvc.yaml stage {stage}: deps miss code `{entry['cmd']}` runs: {missing}"


def test_the_walk_follows_lazy_imports_and_config_sections() -> None:
    """The derivation itself: what `hivid evaluate model` and `hivid ingest` reach."""
    files = {p.relative_to(SRC).as_posix() for p in stage_files(STAGES["evaluate"]["cmd"])}
    assert "hivid/evaluation/stage.py" in files  # lazy import in stages.run_evaluate
    assert "hivid/training/generate.py" in files and "hivid/models/narrator.py" in files
    assert "hivid/configbase.py" in files and "hivid/io.py" in files
    ingest = {p.relative_to(SRC).as_posix() for p in stage_files(STAGES["ingest"]["cmd"])}
    assert "hivid/data/ingest.py" in ingest and "hivid/data/probe.py" in ingest
    # another command's lazy imports are not followed: ingest never runs the trainer
    assert not any(p.startswith("hivid/training/") for p in ingest), sorted(ingest)
    assert not any(p.startswith("hivid/annotate/") for p in ingest), sorted(ingest)
