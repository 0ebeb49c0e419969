"""The layering of docs/architecture.md holds: `lint-imports` checks the contracts in
pyproject.toml ([tool.importlinter]) over every import, including imports inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What the `lint-imports` console script runs, with this interpreter (so the metacrm it
#: analyses is the one the tests import).
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, str(config), "--no-cache"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept():
    result = _lint(ROOT / "pyproject.toml", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_broken_contract_fails_the_check(tmp_path):
    """The check is not vacuous: a contract the code does not keep (the API uses the record
    engine) is reported as broken, with the offending import."""
    config = tmp_path / "pyproject.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["metacrm.engine", "metacrm.metamodel"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "api without records"\ntype = "forbidden"\n'
        'source_modules = ["metacrm.engine.api"]\nforbidden_modules = ["metacrm.engine.records"]\n')
    result = _lint(config, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "api without records BROKEN" in result.stdout
    assert "metacrm.engine.api." in result.stdout and "-> metacrm.engine.records" in result.stdout


def _dialect_branches(path: Path) -> list[str]:
    """Where a module asks which database it is on: `<x>.dialect.name`, or an import of a
    dialect's own constructs (sqlalchemy.dialects)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "name" and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "dialect":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} .dialect.name")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy.dialects"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module} import")
    return found


def test_dialect_knowledge_stays_in_storage():
    """Only engine/storage tells SQLite from PostgreSQL (docs/architecture.md, "Dialect knowledge
    is low"); other layers call its helpers (engine/storage/dialect.py: row locks, upserts,
    increments), so a dialect difference has one definition."""
    storage = ROOT / "engine" / "storage"
    modules = [p for p in (ROOT / "engine").rglob("*.py") if storage not in p.parents]
    assert len(modules) > 50
    assert [hit for path in modules for hit in _dialect_branches(path)] == []
    assert _dialect_branches(storage / "dialect.py")  # the check sees a branch where there is one


def _function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of metacrm placed inside a function of `path`, unless the
    function says why above it with a `# lazy:` comment (a heavy optional module)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            explained = any("# lazy:" in line for line in lines[function.lineno - 1:node.lineno - 1])
            found += [(node.lineno, m) for m in modules if m.startswith("metacrm") and not explained]
    return found


def test_no_import_inside_a_function_dodges_a_cycle():
    """Layers that point down need no imports hidden in functions: every metacrm import is at the
    top of its module, where import-linter and a reader see it (imports under TYPE_CHECKING are
    not inside functions; a deliberately lazy one says why with `# lazy:`)."""
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for folder in ("engine", "metamodel", "plugins") for path in sorted((ROOT / folder).rglob("*.py"))
                 for line, module in _function_imports(path)]
    assert offenders == []
