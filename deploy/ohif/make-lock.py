"""Regenerate package-lock.json after changing a version in package.json (needs npm and the registry).

@ohif/app is used for its prebuilt dist/ only (a static web application): its package.json still
declares the libraries it was built from, one of which (@ohif/i18n at the same version) was never
published, so npm cannot resolve them. The lockfile therefore holds @ohif/app as a single entry
(tarball address and sha512 integrity from the registry, no dependencies) and puppeteer-core with
its full tree as npm resolves it. `npm ci` (npm 9 or later) installs exactly that and checks every
tarball against its integrity.

Usage: python3 deploy/ohif/make-lock.py
"""

import json
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = "@ohif/app"


def main() -> None:
    package = json.loads((HERE / "package.json").read_text())
    app_version = package["dependencies"][APP]
    with tempfile.TemporaryDirectory() as folder:
        rest = {**package, "dependencies": {k: v for k, v in package["dependencies"].items() if k != APP}}
        (Path(folder) / "package.json").write_text(json.dumps(rest, indent=2))
        subprocess.run(
            ["npm", "install", "--package-lock-only", "--ignore-scripts", "--lockfile-version=3",
             "--no-omit-lockfile-registry-resolved", "--no-audit", "--no-fund"],
            cwd=folder, check=True,
        )
        lock = json.loads((Path(folder) / "package-lock.json").read_text())
    view = subprocess.run(
        ["npm", "view", f"{APP}@{app_version}", "version", "dist", "license", "--json"],
        check=True, capture_output=True, text=True,
    )
    info = json.loads(view.stdout)
    if info["version"] != app_version:
        raise SystemExit(f"{APP}@{app_version} not found in the registry")
    lock["packages"][""]["dependencies"] = package["dependencies"]
    lock["packages"][f"node_modules/{APP}"] = {
        "version": app_version,
        "resolved": info["dist"]["tarball"],
        "integrity": info["dist"]["integrity"],
        "license": info.get("license", ""),
    }
    root = lock["packages"].pop("")
    lock["packages"] = {"": root, **dict(sorted(lock["packages"].items()))}
    (HERE / "package-lock.json").write_text(json.dumps(lock, indent=2) + "\n")
    print(f"wrote {HERE / 'package-lock.json'}")


if __name__ == "__main__":
    main()
