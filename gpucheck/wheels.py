"""A folder of wheels for GPU machines without network, and its offline install.

    python -m gpucheck.wheels download gpu-wheels [--python-version 3.12] [--platform TAG ...]
    python -m gpucheck.wheels install gpu-wheels --target .gpu-site

``download`` (where the package index is reachable; ``make gpu-wheels``) fetches, without
their dependencies, the exact versions this repository is tested with of what the GPU tests
and benchmarks import beyond torch and numpy: pure-Python packages plus a few small compiled
ones (PyYAML, xxhash, psutil, ...) for the target's Python and platform, and the SciPy /
scikit-learn pair that DRAG's benchmark needs.  Versions come from requirements.txt where
pinned there, else from the running environment (the repo's .venv).  A package that has no
wheel on the index (antlr4-python3-runtime 4.9.3, which omegaconf pins, ships only an sdist)
is built into a pure-Python wheel.  The folder must stay under 60 MB.

``install`` puts into ``--target`` the wheels the running Python lacks (missing, or a pure-Python
package in another version); nothing of the machine's own environment is modified, and
``make gpu-check`` puts that folder on PYTHONPATH (after the repository's sources) for the
check's processes only.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 60_000_000
# distribution -> why the GPU machine needs it
WHEELS = {
    "hydra-core": "zerocopy-gcn configs (epochs, GPU training tests)",
    "omegaconf": "Hydra's config objects",
    "antlr4-python3-runtime": "omegaconf's interpolation grammar",
    "PyYAML": "omegaconf reads YAML",
    "packaging": "hydra-core, pytest",
    "torch-geometric": "zerocopy-gcn's GraphSAGE/GAT layers",
    "xxhash": "imported by torch-geometric",
    "psutil": "imported by torch-geometric",
    "requests": "imported by torch-geometric",
    "urllib3": "requests",
    "idna": "requests",
    "certifi": "requests",
    "charset-normalizer": "requests",
    "tqdm": "progress bars (trilab, zerocopy-gcn)",
    "pytest": "runs the GPU tests",
    "pluggy": "pytest",
    "iniconfig": "pytest",
    "Pygments": "pytest",
    "pytest-timeout": "the repo's pytest settings (timeout)",
    "hypothesis": "zerocopy-gcn test files",
    "attrs": "hypothesis",
    "sortedcontainers": "hypothesis",
    "scipy": "scikit-learn; zerocopy-gcn's reverse-PageRank cache ranking",
    "scikit-learn": "DRAG's channel clustering (its benchmark imports it)",
    "joblib": "scikit-learn",
    "threadpoolctl": "scikit-learn",
    "narwhals": "scikit-learn",
    "cloudpickle": "scikit-learn",
}
# pytest and its parts stay the machine's own where it has them: the machine's plugins
# (pytest-xdist, -cov, -benchmark, ...) load into whatever pytest runs, and were installed for its
KEEP_PRESENT = {"pytest", "pluggy", "iniconfig", "pygments", "pytest-timeout"}
DEFAULT_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pinned_versions(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wanted(pins: dict[str, str], installed=importlib.metadata.version) -> dict[str, str]:
    """distribution -> exact version (requirements.txt first, else the running environment)."""
    versions = {}
    for distribution in WHEELS:
        version = pins.get(normalise(distribution))
        if version is None:
            try:
                version = installed(distribution)
            except importlib.metadata.PackageNotFoundError as error:
                raise SystemExit(
                    f"{distribution}: not pinned in requirements.txt and not "
                    "installed here; run `make setup` first"
                ) from error
        versions[distribution] = version
    return versions


def wheel_distribution(filename: str) -> str:
    """Distribution name of a wheel file (the part before the version)."""
    return normalise(filename.split("-")[0])


def wheel_version(filename: str) -> str:
    return filename.split("-")[1]


def _supported_tags() -> frozenset[str]:
    """The wheel tags the running Python accepts (pip's own list; pip is there to install)."""
    try:
        from packaging.tags import sys_tags
    except ImportError:  # pragma: no cover - the machine has pip, which vendors packaging
        from pip._vendor.packaging.tags import sys_tags
    return frozenset(str(tag) for tag in sys_tags())


def wheel_tags(filename: str) -> set[str]:
    """Every ``python-abi-platform`` tag a wheel's file name claims (compressed sets expanded)."""
    pythons, abis, platforms = filename[: -len(".whl")].split("-")[-3:]
    return {
        f"{python}-{abi}-{platform}"
        for python in pythons.split(".")
        for abi in abis.split(".")
        for platform in platforms.split(".")
    }


def to_install(
    folder: Path, present=importlib.metadata.version, supported: frozenset[str] | None = None
) -> list[Path]:
    """The wheels in ``folder`` the running Python needs and can use.

    A missing distribution is always installed.  A present one in another version is
    shadowed only by a pure-Python wheel (exact pins between such packages matter: omegaconf
    2.3 runs only with antlr4 4.9, not with the 4.13 a machine may have); a compiled one the
    machine has is kept, since it was built against the machine's numpy, and so is the
    machine's pytest with its helpers (:data:`KEEP_PRESENT`).  A wheel this Python
    cannot use (another Python version or platform) is left out with a line saying so: pip
    would refuse the whole install for it.
    """
    supported = _supported_tags() if supported is None else supported
    chosen = []
    for wheel in sorted(folder.glob("*.whl")):
        if not wheel_tags(wheel.name) & supported:
            print(f"{wheel.name}: not for this Python ({sys.version.split()[0]}); left out")
            continue
        try:
            version = present(wheel_distribution(wheel.name))
        except importlib.metadata.PackageNotFoundError:
            chosen.append(wheel)
            continue
        pure = wheel.name.endswith("-none-any.whl")
        keep = wheel_distribution(wheel.name) in KEEP_PRESENT
        if pure and not keep and normalise(version) != normalise(wheel_version(wheel.name)):
            chosen.append(wheel)
    return chosen


def folder_report(folder: Path) -> tuple[int, list[tuple[str, int]]]:
    sizes = sorted(
        ((w.name, w.stat().st_size) for w in folder.glob("*.whl")), key=lambda item: -item[1]
    )
    return sum(size for _, size in sizes), sizes


def download(folder: Path, python_version: str, platforms: list[str]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    versions = wanted(pinned_versions())
    target = [
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        *[arg for p in platforms for arg in ("--platform", p)],
    ]
    for distribution, version in versions.items():
        spec = f"{distribution}=={version}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                *target,
                "-d",
                str(folder),
                spec,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:  # no wheel on the index: build a pure-Python one
            built = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--no-deps",
                    "-w",
                    str(folder),
                    spec,
                ],
                capture_output=True,
                text=True,
            )
            if built.returncode != 0:
                print(
                    f"{spec}: no wheel for Python {python_version} on {platforms} and "
                    f"building one failed:\n{done.stderr}{built.stderr}"
                )
                return 1
            made = [
                w
                for w in folder.glob("*.whl")
                if wheel_distribution(w.name) == normalise(distribution)
            ]
            if not made or not any(w.name.endswith("-none-any.whl") for w in made):
                print(
                    f"{spec}: the built wheel is not pure Python; it would not fit another machine"
                )
                return 1
    total, sizes = folder_report(folder)
    requirements = "\n".join(f"{d}=={v}" for d, v in versions.items()) + "\n"
    (folder / "requirements.txt").write_text(requirements)
    print(
        f"{folder}: {len(sizes)} wheels, {total / 1e6:.1f} MB (limit {LIMIT_BYTES / 1e6:.0f} MB)"
        f"; largest: " + ", ".join(f"{n} {s / 1e6:.1f} MB" for n, s in sizes[:3])
    )
    if total > LIMIT_BYTES:
        print("over the limit: drop the largest optional wheels or raise the limit knowingly")
        return 1
    print(
        f"copy {folder}/ next to the repository on the GPU machine; `make gpu-check` installs "
        "what that machine lacks from it, offline"
    )
    return 0


def install(folder: Path, target: Path) -> int:
    sys.path.insert(0, str(target))  # what an earlier install put there counts as present
    importlib.invalidate_caches()
    chosen = to_install(folder)
    if not chosen:
        print(f"{folder}: nothing to install (every distribution present)")
        return 0
    print(f"installing offline into {target}: " + ", ".join(w.name for w in chosen))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-compile",  # byte-compiling thousands of files would eat the 30 s cap
            "--find-links",
            str(folder),
            "--target",
            str(target),
            *map(str, chosen),
        ]
    )
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpucheck.wheels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    get = sub.add_parser("download")
    get.add_argument("folder", type=Path)
    get.add_argument("--python-version", default="3.12")
    get.add_argument("--platform", action="append", default=None)
    put = sub.add_parser("install")
    put.add_argument("folder", type=Path)
    put.add_argument("--target", type=Path, default=ROOT / ".gpu-site")
    args = parser.parse_args(argv)
    if args.action == "download":
        return download(args.folder, args.python_version, args.platform or list(DEFAULT_PLATFORMS))
    return install(args.folder, args.target)


if __name__ == "__main__":
    sys.exit(main())
