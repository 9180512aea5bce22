"""Helpers of the deployment tests: Dockerfiles, image contents, compose files, commands.

Everything here is static (no Docker engine): the one Dockerfile is parsed, the files an image
target's stages copy are laid out in a folder as the image would hold them (honouring
.dockerignore), and the commands that compose and Kubernetes run in that image are imported
there, in a fresh interpreter that cannot see the repository, with the packages the image leaves
out blocked.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
# Each image target of the Dockerfile and the services (packages under services/) it runs.
IMAGE_SERVICES = {"camera": ("camera",), "worker": ("worldmodel", "dreamer", "agent"),
                  "coordinator": ("coordinator",)}
IMAGES = tuple(IMAGE_SERVICES)
SERVICES = tuple(s for services in IMAGE_SERVICES.values() for s in services)
TORCH_FREE = ("camera", "coordinator")  # images that never load a model
COMPOSE_FILE = REPO / "docker-compose.yml"
OVERRIDES = sorted((REPO / "deploy" / "compose").glob("*.yml"))
SCHEMA_FILE = REPO / "deploy" / "schemas" / "compose-spec.json"


# ---- Dockerfiles ----------------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        text = self.args.strip()
        if text.startswith("["):
            return json.loads(text)
        return None


@dataclass
class Dockerfile:
    """A Dockerfile's stages; for an image target (see `image_target`), the stages it is built
    from, its own chain of stages (FROM a stage of the file) flattened into the final one."""

    path: Path
    stages: list[list[Instruction]] = field(default_factory=list)
    target: str | None = None

    @property
    def final(self) -> list[Instruction]:
        return self.stages[-1]

    def all(self, keyword: str, stage: list[Instruction] | None = None) -> list[Instruction]:
        pool = stage if stage is not None else [i for s in self.stages for i in s]
        return [i for i in pool if i.keyword == keyword]

    def args(self) -> dict[str, str]:
        """Every ARG with its default ('' when it has none)."""
        out = {}
        for inst in self.all("ARG"):
            name, _, default = inst.args.partition("=")
            out[name.strip()] = default.strip().strip('"')
        return out

    def cmd(self) -> list[str]:
        cmds = self.all("CMD", self.final)
        assert cmds, f"{self.path} {self.target or ''}: no CMD"
        form = cmds[-1].exec_form()
        assert form, f"{self.path}: CMD must use the exec form (JSON list) so signals reach Python"
        return form

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for inst in self.all("ENV", self.final):
            for token in shlex.split(inst.args):
                key, _, value = token.partition("=")
                env[key] = value
        return env

    def workdir(self) -> str:
        dirs = self.all("WORKDIR", self.final)
        return dirs[-1].args.strip() if dirs else "/"


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions by stage; comments dropped, continuation lines joined."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    assert not current, f"{path}: dangling line continuation"
    parsed = Dockerfile(path)
    preamble: list[Instruction] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        inst = Instruction(keyword.upper(), rest.strip())
        if inst.keyword == "FROM":
            parsed.stages.append([inst])
        elif parsed.stages:
            parsed.stages[-1].append(inst)
        else:
            preamble.append(inst)  # ARGs before the first FROM
    if parsed.stages:
        parsed.stages[0][:0] = preamble
    return parsed


def _from_parts(stage: list[Instruction]) -> tuple[str, str | None]:
    """(what the stage is FROM, the stage's own name or None)."""
    parts = next(i for i in stage if i.keyword == "FROM").args.split()
    return parts[0], parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None


def _copied_from(stage: list[Instruction]) -> list[str]:
    return [t.partition("=")[2] for i in stage if i.keyword in ("COPY", "ADD")
            for t in shlex.split(i.args) if t.startswith("--from=")]


def image_target(dockerfile: Dockerfile, target: str) -> Dockerfile:
    """The image `docker build --target target` makes: the target's chain of stages as one final
    stage, after the stages it copies from (with their own chains)."""
    by_name = {name: stage for stage in dockerfile.stages
               if (name := _from_parts(stage)[1]) is not None}
    assert target in by_name, f"{dockerfile.path}: no stage named {target}"

    def chain(name: str) -> list[list[Instruction]]:
        stages: list[list[Instruction]] = []
        while name in by_name:
            stages.insert(0, by_name[name])
            name = _from_parts(by_name[name])[0]
        return stages

    own = chain(target)
    used: list[list[Instruction]] = []
    pending = [name for stage in own for name in _copied_from(stage)]
    while pending:
        for stage in chain(pending.pop()):
            if not any(stage is u for u in used):
                used.append(stage)
                pending += _copied_from(stage)
    before = [s for s in dockerfile.stages
              if any(s is u for u in used) and not any(s is o for o in own)]
    return Dockerfile(dockerfile.path, [*before, [i for stage in own for i in stage]], target)


def dockerfile_of(image: str) -> Dockerfile:
    """The image target `image` (one of IMAGES) of the Dockerfile."""
    return image_target(parse_dockerfile(DOCKERFILE), image)


def image_of(service: str) -> str:
    """The image that runs `service`."""
    return next(image for image, services in IMAGE_SERVICES.items() if service in services)


# ---- .dockerignore and the image's files ----------------------------------------------------------

def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _matches(pattern: str, rel: str) -> bool:
    """Docker's rules for what matters here: `*` within a name, `**/` at any depth, a match of
    a folder covering what it holds."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("**/"):
        inner = pattern[3:]
        candidates = ["/".join(parts[i: j + 1]) for i in range(len(parts)) for j in range(i, len(parts))]
        return any(fnmatch.fnmatchcase(c, inner) for c in candidates)
    return any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)


def ignored(rel: str, patterns: list[str] | None = None) -> bool:
    """Whether `rel` (a path relative to the build context) is left out of the context."""
    result = False
    for pattern in patterns if patterns is not None else dockerignore_patterns():
        negate = pattern.startswith("!")
        if _matches(pattern.lstrip("!").rstrip("/"), rel):
            result = not negate
    return result


def copy_sources(dockerfile: Dockerfile) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD of the final stage that reads the build context."""
    out = []
    for inst in dockerfile.final:
        if inst.keyword not in ("COPY", "ADD"):
            continue
        tokens = shlex.split(inst.args)
        if any(t.startswith("--from") for t in tokens):
            continue
        tokens = [t for t in tokens if not t.startswith("--")]
        out.append((tokens[:-1], tokens[-1]))
    return out


def build_image_tree(dockerfile: Dockerfile, root: Path) -> Path:
    """Lay out under `root` the context files the final stage copies; returns the WORKDIR.
    Copies from other stages (`--from`, the virtual environment) are left out."""
    patterns = dockerignore_patterns()
    workdir = dockerfile.workdir()
    for sources, dest in copy_sources(dockerfile):
        target = Path(dest) if dest.startswith("/") else Path(workdir) / dest
        target = root / str(target).lstrip("/")
        for src in sources:
            path = REPO / src
            assert path.exists(), f"{dockerfile.path}: COPY source {src} does not exist"
            assert not ignored(src.rstrip("/"), patterns), \
                f"{dockerfile.path}: {src} is excluded by .dockerignore"
            if path.is_dir():
                for item in path.rglob("*"):
                    rel = item.relative_to(REPO).as_posix()
                    if item.is_file() and not ignored(rel, patterns):
                        out = target / item.relative_to(path)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(item, out)
            else:
                out = target / path.name if dest.endswith("/") else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
    return root / workdir.lstrip("/")


# ---- commands -------------------------------------------------------------------------------------

def queue_jobs() -> dict[str, list[str]]:
    """queue -> the dotted job functions a worker of that queue runs."""
    from shared.phases import PHASES

    jobs: dict[str, list[str]] = {}
    for phase in PHASES.values():
        jobs.setdefault(phase.queue, []).append(phase.func)
    return jobs


def shared_job_functions() -> list[str]:
    """Dotted `shared.*` functions that rq runs in whichever worker holds the job: callbacks
    (`Callback("shared.cycles.on_phase_success")`) and the control queue's jobs."""
    found = set()
    for path in list((REPO / "shared").glob("*.py")) + list((REPO / "services").rglob("*.py")):
        found.update(re.findall(r"[\"'](shared\.[a-z_]+\.[a-z_]+)[\"']", path.read_text()))
    return sorted(found)


def import_targets(argv: list[str]) -> list[str]:
    """What must import for a container command to start: `module` or `module:attr` entries."""
    assert argv[:2] == ["python", "-m"], f"ptzjepa containers run `python -m ...`, got {argv}"
    module = argv[2]
    if module == "uvicorn":
        assert "--factory" in argv, f"{argv}: create_app is a factory (--factory)"
        app = next(a for a in argv[3:] if not a.startswith("-") and ":" in a)
        return ["uvicorn", app]
    if module == "shared.worker":
        from shared.keys import QUEUE_NAMES

        queues = []
        for arg in argv[3:]:
            if arg.startswith("-"):
                break
            queues.append(arg)
        assert queues, f"{argv}: a worker needs at least one queue"
        unknown = [q for q in queues if q not in QUEUE_NAMES]
        assert not unknown, f"{argv}: unknown queue(s) {unknown}; known {QUEUE_NAMES}"
        jobs = queue_jobs()
        targets = ["shared.worker:main"]
        for queue in queues:
            targets += [_as_target(f) for f in jobs.get(queue, [])]
        targets += [_as_target(f) for f in shared_job_functions()]
        return targets
    return [module]


def _as_target(dotted: str) -> str:
    module, _, attr = dotted.rpartition(".")
    return f"{module}:{attr}"


_CHECK = r'''
import importlib, json, os, sys
app, repo, blocked, targets = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3])), json.loads(sys.argv[4])
# The repository is installed in editable mode in the test venv: drop its finders, so that only
# the image's files can be imported.
sys.meta_path[:] = [f for f in sys.meta_path
                    if not str(getattr(f, "__module__", "") or type(f).__module__).startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks
                     if not str(getattr(h, "__module__", "")).startswith("__editable__")]
sys.path[:] = [app] + [p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(repo)]
sys.path_importer_cache.clear()

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ImportError(f"{name} is not installed in this image")
        return None

sys.meta_path.insert(0, Blocked())
problems = []
for target in targets:
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
        where = getattr(mod, "__file__", "") or ""
        if where and not os.path.realpath(where).startswith(os.path.realpath(app)) and \
                module.partition(".")[0] in ("shared", "services"):
            problems.append(f"{module} imported from outside the image: {where}")
        if attr and not callable(getattr(mod, attr, None)):
            problems.append(f"{target}: no callable {attr}")
    except Exception as exc:
        problems.append(f"{target}: {type(exc).__name__}: {exc}")
print(json.dumps(problems))
'''


def check_imports(app_dir: Path, targets: list[str], blocked: list[str]) -> list[str]:
    """Problems importing `targets` with only `app_dir` (the image's WORKDIR) on the path."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _CHECK, str(app_dir), str(REPO), json.dumps(blocked),
         json.dumps(sorted(set(targets)))],
        capture_output=True, text=True, timeout=120, cwd=app_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- compose --------------------------------------------------------------------------------------

def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


def ptzjepa_services(doc: dict) -> dict[str, dict]:
    """Compose services built from a ptzjepa Dockerfile."""
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def image_of_build(build: dict) -> str:
    """The image target a compose `build:` section builds (from the one Dockerfile)."""
    dockerfile = build["dockerfile"]
    assert dockerfile == DOCKERFILE.relative_to(REPO).as_posix(), \
        f"ptzjepa images are built from {DOCKERFILE.relative_to(REPO)}, not {dockerfile}"
    assert build.get("target") in IMAGES, f"build target {build.get('target')!r} is not one of {IMAGES}"
    return build["target"]


def env_file_lines(path: Path, include_commented: bool = False) -> dict[str, str]:
    """KEY=VALUE lines of an env file (optionally also the commented-out examples)."""
    env = {}
    for line in path.read_text().splitlines():
        text = line.strip()
        if include_commented and re.match(r"#\s*PTZJEPA_[A-Z0-9_]+=", text):
            text = text.lstrip("#").strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        env[key.strip()] = value.strip()
    return env
