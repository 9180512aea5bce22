"""Jobs carry no pickle: every rq queue, job fetch, worker and registry uses the JSON serializer of
`shared.queues`, checked in the source; jobs round-trip through a real Redis and a real worker as
JSON; a job whose arguments are not JSON is refused at enqueue; a pickled job is never loaded."""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
from rq import Callback, Queue, SimpleWorker
from rq.exceptions import DeserializationError
from rq.serializers import JSONSerializer

from shared.queues import SERIALIZER, NotJSONError, fetch_job, fetch_jobs, job_queue, json_result

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = ("shared", "services", "ptzjepa", "bench")
NO_PICKLE_ROOTS = ("shared", "services", "ptzjepa")
QUEUES_MODULE = ROOT / "shared" / "queues.py"
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "shelve", "jsonpickle"}


# ---- the source -------------------------------------------------------------------------------
def _rq_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted path, for every name a module binds to rq (imports, subclasses)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rq":
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "rq":
                    continue
                if alias.asname:  # import rq.job as j: j is rq.job
                    names[alias.asname] = alias.name
                else:  # import rq.job: binds rq
                    names["rq"] = "rq"
    for node in ast.walk(tree):  # a class of ours derived from an rq class is constructed like it
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                path = _dotted(base, names)
                if path:
                    names[node.name] = path
    return names


def _chain(node: ast.AST) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return [node.id, *parts] if isinstance(node, ast.Name) else []


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    chain = _chain(node)
    if not chain or chain[0] not in names:
        return None
    return ".".join([names[chain[0]], *chain[1:]])


def _resolve(path: str) -> Any:
    """The rq object at a dotted path (a module, then attributes of it)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _takes_serializer(obj: Any) -> bool:
    try:
        return "serializer" in inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False


def _is_serializer_name(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "SERIALIZER") or \
        (isinstance(node, ast.Attribute) and node.attr == "SERIALIZER")


def serializer_problems(source: str, filename: str) -> list[str]:
    """Where `source` builds an rq object that takes a serializer without `serializer=SERIALIZER`
    (a registry may take `queue=` instead: it inherits the queue's), or names rq's serializers."""
    tree = ast.parse(source, filename)
    names = _rq_names(tree)
    problems = [f"{filename}:{node.lineno}: imports rq.serializers (use shared.queues.SERIALIZER)"
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "rq.serializers"]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        path = _dotted(node.func, names)
        if path is None or not _takes_serializer(_resolve(path)):
            continue
        given = {kw.arg: kw.value for kw in node.keywords}
        if "serializer" in given and _is_serializer_name(given["serializer"]):
            continue
        if path.endswith("Registry") and "queue" in given and "serializer" not in given:
            continue
        problems.append(f"{filename}:{node.lineno}: {path}(...) without serializer=SERIALIZER")
    return problems


def pickle_imports(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [f"{filename}:{node.lineno}: imports {m}" for m in modules
                  if m.split(".")[0] in PICKLE_MODULES]
    return found


def _sources(roots: tuple[str, ...]) -> list[Path]:
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py"))


def test_every_rq_queue_job_worker_and_registry_uses_the_json_serializer():
    problems = [problem for path in _sources(SOURCE_ROOTS) if path != QUEUES_MODULE
                for problem in serializer_problems(path.read_text(), str(path.relative_to(ROOT)))]
    assert problems == []


def test_nothing_that_handles_jobs_imports_pickle():
    found = [hit for path in _sources(NO_PICKLE_ROOTS)
             for hit in pickle_imports(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []


@pytest.mark.parametrize("source, flagged", [
    ("from rq import Queue\nQueue('q', connection=c)", True),
    ("from rq import Queue\nQueue('q', connection=c, serializer=SERIALIZER)", False),
    ("from rq import Queue\nQueue('q', connection=c, serializer='pickle')", True),
    ("import rq\nrq.Queue('q', connection=c, **options)", True),
    ("from rq.job import Job\nJob.fetch('id', connection=c)", True),
    ("from rq.job import Job as J\nJ.fetch_many(['id'], connection=c, serializer=queues.SERIALIZER)", False),
    ("from rq.registry import StartedJobRegistry\nStartedJobRegistry('q', connection=c)", True),
    ("from rq.registry import FailedJobRegistry\nFailedJobRegistry(queue=q)", False),
    ("from rq import SimpleWorker\nclass W(SimpleWorker): pass\nW([q], connection=c)", True),
    ("from rq import Callback, Retry\nCallback('a.b')\nRetry(max=2)", False),
    ("from rq.serializers import DefaultSerializer", True),
    ("import multiprocessing\nmultiprocessing.Queue()", False),
])
def test_the_source_check_flags_what_it_must(source, flagged):
    assert bool(serializer_problems(source, "probe.py")) is flagged


def test_the_pickle_check_flags_every_spelling():
    assert pickle_imports("import pickle", "p.py") and pickle_imports("from pickle import loads", "p.py")
    assert pickle_imports("import cloudpickle as cp", "p.py") and not pickle_imports("import json", "p.py")


# ---- a real Redis ---------------------------------------------------------------------------
def echo(*args: Any, **kwargs: Any) -> dict:
    """A job function: returns what it was given (tuples included, which JSON turns into lists)."""
    return {"args": args, "kwargs": kwargs}


def _raw(redis_client, job_id: str, field: str) -> bytes:
    value = redis_client.hget(f"rq:job:{job_id}", field)
    assert value is not None, field
    return value


def test_a_job_round_trips_as_json_through_redis_and_a_real_worker(redis_client):
    queue = job_queue("ptzjepa-test.json", redis_client)
    assert queue.serializer is SERIALIZER and issubclass(SERIALIZER, JSONSerializer)
    registries = (queue.started_job_registry, queue.failed_job_registry, queue.finished_job_registry,
                  queue.deferred_job_registry, queue.scheduled_job_registry, queue.canceled_job_registry)
    assert all(registry.serializer is SERIALIZER for registry in registries)
    job = queue.enqueue(f"{__name__}.echo", args=("cycle-1", 3), kwargs={"node": "n0", "seed": None},
                        job_id="j1", meta={"phase": "collect", "node": "n0"},
                        on_success=Callback("shared.cycles.on_phase_success"))
    # rq zlib-compresses the call; what it compresses is JSON, and so is the meta.
    assert json.loads(zlib.decompress(_raw(redis_client, "j1", "data"))) == \
        [f"{__name__}.echo", None, ["cycle-1", 3], {"node": "n0", "seed": None}]
    assert json.loads(_raw(redis_client, "j1", "meta")) == {"phase": "collect", "node": "n0"}
    assert _raw(redis_client, "j1", "success_callback_name") == b"shared.cycles.on_phase_success"
    fetched = fetch_job("j1", redis_client)
    assert fetched.serializer is SERIALIZER and fetched.args == ["cycle-1", 3]
    assert fetched.kwargs == {"node": "n0", "seed": None} and fetched.meta["phase"] == "collect"
    # The worker runs it; the success callback returns at once (the meta names no cycle).
    SimpleWorker([queue], connection=redis_client, serializer=SERIALIZER).work(burst=True)
    done = fetch_job(job.id, redis_client)
    assert done.get_status().value == "finished"
    expected = {"args": ["cycle-1", 3], "kwargs": {"node": "n0", "seed": None}}
    assert done.return_value() == expected
    (_, fields), = redis_client.xrevrange(f"rq:results:{job.id}", count=1)
    assert json.loads(base64.b64decode(fields[b"return_value"])) == expected
    assert [j.id if j else None for j in fetch_jobs(["j1", "missing"], redis_client)] == ["j1", None]


@pytest.mark.parametrize("args, kwargs, where", [
    ((b"frame-bytes",), {}, "args[0] is of type bytes"),
    ((), {"slots": {"wm_00", "wm_01"}}, "kwargs['slots'] is of type set"),
    (("ok",), {"nested": {"deep": [1, object()]}}, "kwargs['nested']['deep'][1] is of type object"),
])
def test_a_job_with_non_json_arguments_is_refused_at_enqueue(redis_client, args, kwargs, where):
    queue = job_queue("ptzjepa-test.refused", redis_client)
    with pytest.raises(NotJSONError) as refused:
        queue.enqueue(f"{__name__}.echo", args=args, kwargs=kwargs, job_id="bad")
    message = str(refused.value)
    assert f"job {__name__}.echo" in message and where in message and "not JSON" in message
    assert isinstance(refused.value, TypeError)
    assert not redis_client.exists("rq:job:bad") and queue.count == 0


def test_non_json_meta_and_results_are_named(redis_client):
    queue = job_queue("ptzjepa-test.meta", redis_client)
    with pytest.raises(NotJSONError, match=r"meta or result: value\['raw'\] is of type bytes"):
        queue.enqueue(f"{__name__}.echo", job_id="m", meta={"raw": b"\x00"})
    assert not redis_client.exists("rq:job:m")
    assert json_result({"folder": "dreams/n0/j", "shape": (2, 3)}, "probe") == \
        {"folder": "dreams/n0/j", "shape": (2, 3)}
    with pytest.raises(NotJSONError, match=r"the result of probe: value\['ids'\] is of type set"):
        json_result({"ids": {1, 2}}, "probe")


class _Touch:
    """Unpickling this creates a file: a stand-in for code planted in a pickled job."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_a_pickled_job_is_never_loaded(redis_client, tmp_path):
    planted = tmp_path / "ran"
    queue = job_queue("ptzjepa-test.pickled", redis_client)
    queue.enqueue(f"{__name__}.echo", "x", job_id="planted")
    redis_client.hset("rq:job:planted", "data",
                      zlib.compress(pickle.dumps((f"{__name__}.echo", None, (_Touch(planted),), {}))))
    with pytest.raises(DeserializationError):
        _ = fetch_job("planted", redis_client).args
    SimpleWorker([queue], connection=redis_client, serializer=SERIALIZER).work(burst=True)
    assert not planted.exists()
    assert fetch_job("planted", redis_client).get_status().value == "failed"
    assert "planted" in queue.failed_job_registry.get_job_ids()


def test_a_pickle_serialized_queue_cannot_read_a_ptzjepa_job(redis_client):
    job_queue("ptzjepa-test.mixed", redis_client).enqueue(f"{__name__}.echo", 1, job_id="json-job")
    pickled_view = Queue("ptzjepa-test.mixed", connection=redis_client)  # rq's pickle default
    with pytest.raises(DeserializationError):
        _ = pickled_view.fetch_job("json-job").args  # type: ignore[union-attr]
