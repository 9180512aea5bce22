"""rq queues, jobs and registries of ptzjepa, all with one JSON serializer.

rq's default serializer is pickle: whoever can write to Redis would run code in every worker that
loads a job. Every queue, job fetch, worker and registry of ptzjepa is made with `SERIALIZER`
(registries and jobs reached through a queue made here inherit it), so what rq stores through it
is JSON: a job's function path, arguments and keyword arguments, its meta and its return value.
Job arguments are ids and small JSON values; anything else (bytes, a set, an object) is refused
when the job is enqueued, with an error naming the job and the offending value, and nothing of
that job is written. A job that was written with another serializer cannot be loaded and is
refused, never run. Callbacks are stored by rq as dotted names (plain strings), not as code.
JSON has no tuples: a tuple stored by a job reads back as a list.
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

JSON_VALUES = "null, true/false, numbers, strings, lists and dicts with string keys"


class NotJSONError(TypeError):
    """A value rq was asked to store is not JSON (so it would need pickle)."""


_JSON_KEYS = (str, int, float, bool, type(None))  # json writes the non-str ones as strings


def _offending(value: Any, where: str) -> tuple[str, str] | None:
    """Where in `value` the first value json cannot write is, and its type; None if there is none."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _offending(item, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, _JSON_KEYS):
                return f"{where} (key {key!r})", type(key).__name__
            found = _offending(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    return where, type(value).__name__


def _describe(obj: Any) -> tuple[str, Any]:
    """What rq is storing (a job's call, or a meta / result value) and the part to search."""
    if isinstance(obj, tuple) and len(obj) == 4 and isinstance(obj[0], str):
        func_name, _instance, args, kwargs = obj
        return f"job {func_name}", {"args": list(args or ()), "kwargs": kwargs or {}}
    return "a job's meta or result", obj


def not_json_error(obj: Any, what: str | None = None) -> NotJSONError | None:
    """The error naming the first value of `obj` that is not JSON; None if `obj` is all JSON."""
    what, searched = _describe(obj) if what is None else (what, obj)
    found = _offending(searched, "value")
    if found is None:
        return None
    where, type_name = found
    if searched is not obj:  # a job's call: name its args / kwargs, not the wrapper
        where = re.sub(r"^value\['(\w+)'\]", r"\1", where)
    return NotJSONError(f"rq cannot store {what}: {where} is of type {type_name}, not JSON "
                        f"(jobs carry only {JSON_VALUES}; pass ids, not data)")


class StrictJSONSerializer(JSONSerializer):
    """rq's JSON serializer, refusing a non-JSON value with an error that says where it is."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> bytes:
        try:
            return json.dumps(obj, *args, **kwargs).encode("utf-8")
        except (TypeError, ValueError) as exc:
            error = not_json_error(obj) or NotJSONError(f"rq cannot store a job value as JSON: {exc}")
            raise error from exc


def json_result(value: Any, job: str) -> Any:
    """`value`, checked to be JSON: a job returns it through this, because rq stores a result it
    cannot serialize as the text 'Unserializable return value' instead of failing the job."""
    error = not_json_error(value, f"the result of {job}")
    if error is not None:
        raise error
    return value


SERIALIZER = StrictJSONSerializer


def job_queue(name: str, connection: redis.Redis, **kwargs: Any) -> Queue:
    """The rq queue named `name` (a full name from `shared.keys.Keys.queue`)."""
    return Queue(name, connection=connection, serializer=SERIALIZER, **kwargs)


def fetch_job(job_id: str, connection: redis.Redis) -> Job:
    """The job `job_id`; rq's NoSuchJobError if there is none."""
    return Job.fetch(job_id, connection=connection, serializer=SERIALIZER)


def fetch_jobs(job_ids: list[str], connection: redis.Redis) -> list[Job | None]:
    """The jobs `job_ids` in one round trip; None in place of a job that does not exist."""
    return Job.fetch_many(job_ids, connection=connection, serializer=SERIALIZER)
