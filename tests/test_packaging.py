"""The built distribution: every module under one `metacrm` namespace, templates and schemas
included, so an installed metacrm finds them and collides with no other distribution."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("engine", "metamodel", "plugins", "templates")


def clean_checkout(target: Path) -> Path:
    """The files git tracks, copied: a wheel built from the work tree would also carry whatever
    an earlier local build left in build/ (setuptools reuses it)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def test_wheel_installs_everything_under_the_metacrm_namespace(tmp_path):
    source = clean_checkout(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("metacrm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"metacrm"}
    for top in TOP_LEVEL:  # every module and template file of the checkout is in the wheel
        for path in (ROOT / top).rglob("*"):
            if path.suffix in (".py", ".yaml", ".json", ".po") and "__pycache__" not in path.parts:
                assert f"metacrm/{path.relative_to(ROOT).as_posix()}" in names, path
    assert "metacrm/templates/crm_standard/template.yaml" in names
    pages = [*(ROOT / "engine" / "web").rglob("*"), *(ROOT / "engine" / "ui").rglob("*.html")]
    for path in pages:  # the pages' templates, scripts and vendored packages
        if path.is_file() and "__pycache__" not in path.parts:
            assert f"metacrm/{path.relative_to(ROOT).as_posix()}" in names, path
    assert "metacrm/engine/web/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in names
    assert "metacrm/engine/web/static/vendor/swagger-ui-dist/LICENSE" in names
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = ("import metacrm.engine.runtime as r, metacrm.metamodel.loader as l, metacrm.engine.web.assets as a; "
             "print(r.__file__); print(r.find_template('crm_standard').name); "
             "print(len(l.schema('object')) > 0 and '?v=' in a.static_url('vendor/swagger-ui-dist/swagger-ui.css')); "
             "import metacrm.engine.i18n as i; print(i.translate('Not found', 'zh-TW'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert done.returncode == 0, done.stderr
    module, template, schema, translated = done.stdout.split()
    assert module.startswith(str(target)) and template == "crm_standard" and schema == "True"
    assert translated == "找不到"  # the message catalogues are in the wheel
