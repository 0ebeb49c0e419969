"""The built distribution carries the templates and schemas, so an installed metacrm finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_templates_and_schemas(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("metacrm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "templates/crm_standard/template.yaml" in names
    assert "templates/crm_standard/objects/opportunity.yaml" in names
    assert "templates/crm_standard/sample_data.yaml" in names
    assert "metamodel/schemas/object.schema.json" in names
    assert any(n.endswith("entry_points.txt") for n in names)
