"""The vendored front-end packages: what is committed is what the manifest and the pins say
(checked offline by tools/vendor_assets.py --check), every package ships its licence, and the
pages link only files that exist, by versioned URL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metacrm.engine.web.assets import STATIC_DIR, static_url

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = STATIC_DIR / "vendor" / "manifest.json"


def test_the_committed_vendor_files_are_the_pinned_ones():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "vendor_assets.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_changed_vendor_file_is_reported(tmp_path):
    copy = tmp_path / "repo"
    for part in ("tools", "engine/web"):
        (copy / part).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", str(ROOT / part), str(copy / part)], check=True)
    bundle = copy / "engine/web/static/vendor/swagger-ui-dist/swagger-ui-bundle.js"
    bundle.write_bytes(bundle.read_bytes() + b"\nalert(1)\n")
    (copy / "engine/web/static/vendor/swagger-ui-dist/extra.js").write_text("x", "utf-8")
    done = subprocess.run([sys.executable, str(copy / "tools" / "vendor_assets.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "swagger-ui-bundle.js: missing or changed" in done.stderr
    assert "extra.js: not in the manifest" in done.stderr


def test_every_vendored_package_has_a_licence_and_a_version():
    packages = json.loads(MANIFEST.read_text("utf-8"))["packages"]
    assert packages
    for entry in packages:
        assert entry["version"] and entry["license"] and entry["integrity"].startswith("sha512-")
        assert entry["licenses"] and all(name in entry["files"] for name in entry["licenses"])


def test_static_urls_carry_the_content_digest_and_refuse_what_is_not_there():
    url = static_url("vendor/swagger-ui-dist/swagger-ui.css")
    assert url.startswith("/static/vendor/swagger-ui-dist/swagger-ui.css?v=")
    for missing in ("vendor/nothing.js", "../assets.py", "/etc/passwd"):
        with pytest.raises(ValueError):
            static_url(missing)
