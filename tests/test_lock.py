"""requirements.lock, what the image installs, keeps up with pyproject.toml (checked without Docker)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def test_every_dependency_and_build_requirement_is_pinned_to_a_version_it_allows() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {canonicalize_name(name): version for name, version in re.findall(r"^(\S+)==(\S+) \\$", lock, re.M)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in project["project"]["dependencies"] + project["build-system"]["requires"]:
        requirement = Requirement(line)
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in requirements.lock: run docker/update-lock"
        assert requirement.specifier.contains(version), f"{requirement} but the lock has {version}: docker/update-lock"
