#!/usr/bin/env python3
"""Vendor the pinned front-end packages from the npm registry into the Python package.

    python tools/vendor_assets.py           # fetch the pins of engine/web/vendor.json, rewrite the vendor folder
    python tools/vendor_assets.py --check   # offline: the committed files are what the manifest says

Why vendored: the pages must work without any CDN at run time (air-gapped installs, a strict
Content-Security-Policy of 'self'), and a wheel must carry everything it serves. So the files
are fetched once, by a developer, with `npm pack` (the registry's own client; no install
scripts run), checked against the pinned tarball integrity, and committed under
engine/web/static/vendor/<package>/ together with the package's licence files.
engine/web/static/vendor/manifest.json records name, version, licence, the tarball
integrity and the SHA-256 of every file; tests/test_web_assets.py checks it against the files.

To add a package: add an entry to engine/web/vendor.json with its version and the files the
pages need (paths inside the package), leave "integrity" out, run this script (it pins the
integrity of what it fetched the first time), look at the diff, commit.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "engine" / "web" / "vendor.json"
VENDOR = ROOT / "engine" / "web" / "static" / "vendor"
MANIFEST = VENDOR / "manifest.json"


class VendorError(Exception):
    """Something about a pin or a fetched package is not as expected; nothing was written for it."""


def integrity_of(data: bytes) -> str:
    """The npm registry's Subresource-Integrity form of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(name: str, version: str, into: Path) -> bytes:
    """The package tarball, by `npm pack` (downloads only; runs no scripts)."""
    done = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--ignore-scripts",
                           "--pack-destination", str(into)], capture_output=True, text=True, cwd=into)
    if done.returncode != 0:
        raise VendorError(f"npm pack {name}@{version} failed: {done.stderr.strip()}")
    (packed,) = json.loads(done.stdout)
    return (into / packed["filename"]).read_bytes()


def members(tarball: bytes, wanted: list[str], scratch: Path) -> dict[str, bytes]:
    """The wanted regular files of the tarball (paths inside `package/`), nothing else."""
    path = scratch / "package.tgz"
    path.write_bytes(tarball)
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive.getmembers():
            inner = member.name.split("/", 1)[1] if "/" in member.name else ""
            if inner in wanted and member.isfile():
                found[inner] = archive.extractfile(member).read()
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise VendorError(f"not in the package: {', '.join(missing)}")
    return found


def vendor_one(name: str, pin: dict) -> dict:
    """Fetch, verify and write one package; returns its manifest entry (and may set pin['integrity'])."""
    with tempfile.TemporaryDirectory() as scratch:
        tarball = fetch(name, pin["version"], Path(scratch))
        got = integrity_of(tarball)
        if pin.get("integrity") and pin["integrity"] != got:
            raise VendorError(f"{name}@{pin['version']}: the tarball's integrity {got} is not the pinned "
                              f"{pin['integrity']}")
        pin["integrity"] = got
        files = members(tarball, ["package.json", *pin["files"], *pin["licenses"]], Path(scratch))
    package = json.loads(files.pop("package.json"))
    if package.get("version") != pin["version"]:
        raise VendorError(f"{name}: npm gave version {package.get('version')}, pinned {pin['version']}")
    target = VENDOR / name
    shutil.rmtree(target, ignore_errors=True)
    for inner, data in files.items():
        (target / inner).parent.mkdir(parents=True, exist_ok=True)
        (target / inner).write_bytes(data)
    return {"name": name, "version": pin["version"], "license": package.get("license", "see licence files"),
            "integrity": got, "licenses": sorted(pin["licenses"]),
            "files": {inner: hashlib.sha256(data).hexdigest() for inner, data in sorted(files.items())}}


def vendor_all() -> None:
    config = json.loads(PINS.read_text("utf-8"))
    pins = config["packages"]
    entries = [vendor_one(name, pins[name]) for name in sorted(pins)]
    for stale in VENDOR.iterdir() if VENDOR.exists() else ():
        if stale.is_dir() and stale.name not in pins:
            shutil.rmtree(stale)
    MANIFEST.write_text(json.dumps({"packages": entries}, indent=2) + "\n", "utf-8")
    PINS.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    for entry in entries:
        print(f"{entry['name']}@{entry['version']} ({entry['license']}): {len(entry['files'])} file(s)")


def check() -> list[str]:
    """What differs between the pins, the manifest and the committed files (empty: all agree)."""
    pins = json.loads(PINS.read_text("utf-8"))["packages"]
    entries = {e["name"]: e for e in json.loads(MANIFEST.read_text("utf-8"))["packages"]}
    problems = [f"{name}: pinned but not vendored" for name in pins if name not in entries]
    for name, entry in entries.items():
        pin = pins.get(name)
        if pin is None or pin["version"] != entry["version"] or pin.get("integrity") != entry["integrity"]:
            problems.append(f"{name}: the manifest's {entry['version']} is not the pin; run tools/vendor_assets.py")
            continue
        present = {p.relative_to(VENDOR / name).as_posix() for p in (VENDOR / name).rglob("*") if p.is_file()}
        problems += [f"{name}/{extra}: not in the manifest" for extra in sorted(present - set(entry["files"]))]
        for inner, digest in entry["files"].items():
            path = VENDOR / name / inner
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                problems.append(f"{name}/{inner}: missing or changed")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the committed files offline, fetch nothing")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check()
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        vendor_all()
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
