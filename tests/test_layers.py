"""The layering of docs/architecture.md holds: `lint-imports` checks the contracts in
pyproject.toml ([tool.importlinter]) over every import, including imports inside functions."""

from __future__ import annotations

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
