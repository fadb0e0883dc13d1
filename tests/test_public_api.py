"""``aurora_async.__all__`` is the public surface: sorted, importable, and complete."""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import enum
import importlib
import inspect
import os
import pkgutil
import typing
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest

import aurora_async
import aurora_async.testing

#: The names DESIGN.md fixes, plus the types they hand out (leases, token states).
DESIGNED = {
    "AuroraError",
    "Lease",
    "LeaseTimeout",
    "Limit",
    "NoTokensAvailable",
    "PoolClosed",
    "PoolStats",
    "Token",
    "TokenFileError",
    "TokenPool",
    "TokenState",
    "TokenStats",
}

#: Classes users construct to configure ``pool.request`` (see ``HttpOptions``).
HTTP_CONFIG = {"BearerAuth", "HeaderAuth", "Outcome", "QueryAuth", "Verdict"}


def all_modules() -> Iterator[ModuleType]:
    yield aurora_async
    for info in pkgutil.walk_packages(aurora_async.__path__, "aurora_async."):
        yield importlib.import_module(info.name)


def classes_defined_in_the_package() -> dict[str, type]:
    found: dict[str, type] = {}
    for module in all_modules():
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                found.setdefault(name, obj)
    return found


def exported() -> set[str]:
    return set(aurora_async.__all__) | set(aurora_async.testing.__all__)


# -- the list itself -----------------------------------------------------------------------


@pytest.mark.parametrize("module", [aurora_async, aurora_async.testing])
def test_all_is_sorted_without_duplicates(module: ModuleType) -> None:
    assert module.__all__ == sorted(set(module.__all__))


@pytest.mark.parametrize("module", [aurora_async, aurora_async.testing])
def test_every_name_in_all_is_public_and_importable(module: ModuleType) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)
    del namespace["__builtins__"]
    assert sorted(namespace) == module.__all__
    assert [name for name in module.__all__ if name.startswith("_")] == []


def test_every_public_attribute_of_the_package_is_in_all() -> None:
    public = {
        name
        for name, value in vars(aurora_async).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert sorted(public) == aurora_async.__all__


def test_the_designed_names_are_exported() -> None:
    assert DESIGNED - set(aurora_async.__all__) == set()


def test_redis_backend_is_exported_once_it_exists() -> None:
    if "RedisBackend" not in classes_defined_in_the_package():
        pytest.skip("RedisBackend is not written yet")
    assert "RedisBackend" in aurora_async.__all__


def test_the_http_configuration_classes_are_exported() -> None:
    assert HTTP_CONFIG - set(aurora_async.__all__) == set()


def test_py_typed_ships_with_the_package() -> None:
    assert (Path(aurora_async.__file__).parent / "py.typed").is_file()


# -- exceptions ----------------------------------------------------------------------------


def test_every_exception_defined_in_the_package_is_exported() -> None:
    errors = {
        name
        for name, cls in classes_defined_in_the_package().items()
        if issubclass(cls, BaseException) and not name.startswith("_")
    }
    assert errors - exported() == set()


def test_every_exported_exception_derives_from_aurora_error() -> None:
    errors = [getattr(aurora_async, name) for name in aurora_async.__all__]
    errors = [e for e in errors if inspect.isclass(e) and issubclass(e, BaseException)]
    assert sorted(e.__name__ for e in errors if not issubclass(e, aurora_async.AuroraError)) == []
    assert len(errors) >= 6


@pytest.mark.parametrize(
    ("error", "base"),
    [
        ("LeaseTimeout", TimeoutError),
        ("TokenFileError", ValueError),
        ("PoolClosed", RuntimeError),
        ("BackendUnavailable", ConnectionError),
    ],
)
def test_errors_are_also_the_builtin_error_callers_expect(error: str, base: type) -> None:
    assert issubclass(getattr(aurora_async, error), base)


# -- every class a public signature mentions is exported ---------------------------------


def _classes_in(hint: object) -> Iterator[type]:
    if inspect.isclass(hint) and typing.get_origin(hint) is None:
        yield hint
    for arg in typing.get_args(hint):
        yield from _classes_in(arg)


def _public_hints(cls: type) -> Iterator[tuple[str, object]]:
    # Names the modules import only under TYPE_CHECKING, then the module's own.
    namespace = {**vars(contextlib), **vars(collections.abc), "aiohttp": aiohttp, "os": os}
    for module in (aurora_async, inspect.getmodule(cls)):
        namespace.update(vars(module))
    if dataclasses.is_dataclass(cls):
        for name, hint in typing.get_type_hints(cls, globalns=namespace).items():
            yield f"{cls.__name__}.{name}", hint
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        function = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        if isinstance(function, property):
            function = function.fget
        if not inspect.isfunction(function) or (name == "__init__" and cls is aurora_async.Lease):
            continue
        if name in BACKEND_HOOKS:
            continue  # a backend's side of the contract, typed with the pool's internals
        for arg, hint in typing.get_type_hints(function, globalns=namespace).items():
            yield f"{cls.__name__}.{name}({arg})", hint


#: The methods of the Backend protocol: the pool calls them with its internals.
BACKEND_HOOKS = {
    "bind",
    "acquire",
    "released",
    "cooled",
    "settled",
    "relimited",
    "disabled",
    "enabled",
    "tokens_changed",
}


def classes_missing_from_all() -> dict[str, str]:
    """Classes of the package that an exported class's public signature mentions but
    ``__all__`` leaves out, each with where it was seen first."""
    missing: dict[str, str] = {}
    for name in aurora_async.__all__:
        cls = getattr(aurora_async, name)
        if not inspect.isclass(cls) or issubclass(cls, BaseException | enum.Enum):
            continue
        if cls is aurora_async.Backend:
            continue  # the contract of backends shipped with the package, typed with its internals
        for where, hint in _public_hints(cls):
            if where.split(".")[1].split("(")[0] in BACKEND_HOOKS:
                continue  # a backend's side of that contract
            for used in _classes_in(hint):
                in_package = used.__module__.startswith("aurora_async")
                if in_package and used.__name__ not in exported():
                    missing.setdefault(used.__name__, where)
    return missing


def test_classes_in_public_signatures_are_exported() -> None:
    assert classes_missing_from_all() == {}


def test_reload_result_is_exported() -> None:
    assert "ReloadResult" in aurora_async.__all__


# -- the public API, guarded: a change to it is a deliberate edit of these tables ----------

#: ``aurora_async.__all__``, exactly.
PUBLIC_NAMES = {
    "Calendar",
    "Costs",
    "AuroraError",
    "Auth",
    "Backend",
    "BackendUnavailable",
    "BearerAuth",
    "HeaderAuth",
    "HealthChecker",
    "HttpOptions",
    "Lease",
    "LeaseTimeout",
    "Limit",
    "MonitorReport",
    "NoTokensAvailable",
    "Outcome",
    "PoolClosed",
    "PoolStats",
    "Probe",
    "ProbeAction",
    "ProbeReport",
    "QueryAuth",
    "RateLimitInfo",
    "RedisBackend",
    "RedisTokenState",
    "ReloadResult",
    "RequestFailed",
    "Reservation",
    "StateFile",
    "Token",
    "TokenFileError",
    "TokenMonitor",
    "TokenPool",
    "TokenState",
    "TokenStats",
    "Verdict",
    "read_tokens",
}

_LIMIT_DEFAULT = "limits=Limit(rate=10.0, per=1.0, burst=10.0)"

#: What each public callable is (``def``, ``async def``, ``classmethod``, ``property``,
#: ``attribute``, ``class``) and its parameters: names, kinds (``/``, ``*``, ``**``) and
#: defaults, as ``inspect.signature`` prints them without annotations.
SIGNATURES = {
    "TokenPool.__init__": (
        "def (self, tokens, *, "
        f"{_LIMIT_DEFAULT}, max_in_flight=None, trial_in_flight=1, low_water=0.25, "
        "backoff=(1.0, 60.0), backend=None, probe=None, probe_every=60.0, probe_timeout=10.0, "
        "expiring_within=86400.0, state_file=None, state_every=60.0, start_full=False, "
        "calibrate=True, **http_options)"
    ),
    "TokenPool.from_file": (
        f"classmethod (path=None, *, {_LIMIT_DEFAULT}, watch=False, poll_interval=2.0, **kwargs)"
    ),
    "TokenPool.from_env": f"classmethod (var='AURORA_TOKENS', *, {_LIMIT_DEFAULT}, **kwargs)",
    "TokenPool.lease": "def (self, cost=1, timeout=None, *, scope=None)",
    "TokenPool.acquire": "async def (self, cost=1, timeout=None, *, scope=None)",
    "TokenPool.request": (
        "def (self, method, url, *, cost=1, lease_timeout=None, scope=None, **kwargs)"
    ),
    "TokenPool.stream": (
        "def (self, method, url, *, cost=1, lease_timeout=None, scope=None, **kwargs)"
    ),
    "TokenPool.stats": "def (self)",
    "TokenPool.cool": "def (self, name, seconds)",
    "TokenPool.disable": "def (self, name, reason='disabled by hand')",
    "TokenPool.enable": "def (self, name)",
    "TokenPool.reload": "async def (self, path=None)",
    "TokenPool.watch": "def (self, path=None, *, poll_interval=2.0, use_events=True)",
    "TokenPool.replace_tokens": "def (self, tokens)",
    "TokenPool.aclose": "async def (self)",
    "Lease.token": "property",
    "Lease.name": "property",
    "Lease.waited": "property",
    "Lease.done": "property",
    "Lease.cost": "property",
    "Lease.scope": "property",
    "Lease.rate_limited": "def (self, retry_after=None)",
    "Lease.revoked": "def (self, reason=None)",
    "Lease.failed": "def (self)",
    "Lease.succeeded": "def (self)",
    "Lease.client_error": "def (self)",
    "Lease.exhausted": "def (self, seconds, slack=0.0)",
    "Lease.release": "def (self)",
    "Lease.settle": "def (self, actual=None, /, **parts)",
    "Limit.__init__": "def (self, rate, per=1.0, burst=None, *, unit='requests', scope=None)",
    "Limit.daily": "classmethod (count, *, reset='00:00', tz='UTC', unit='requests', scope=None)",
    "Limit.monthly": (
        "classmethod (count, *, day=1, reset='00:00', tz='UTC', unit='requests', scope=None)"
    ),
    "Limit.sliding_window": "classmethod (count, per=1.0, *, burst=2, unit='requests', scope=None)",
    "Token": "class (value, limits=None, *, max_in_flight=None)",
    "read_tokens": "def (path=None)",
}

#: The public attributes (no leading underscore) ``dir()`` shows on a class and on an
#: instance: the documented API and nothing else. ``Lease.cost`` stays (a lease is "the
#: right to make one call of ``cost`` units", and its repr shows it); the queue's fields
#: (``slot``, ``deadline``, ``fut``, ``live``, ``order``, ``epoch``, ``undo``, ``timeout``,
#: ``granted_at``, ``enqueued_at``) are internals: ``waited`` is the public figure.
PUBLIC_ATTRIBUTES = {
    "Lease": {
        "client_error",
        "cost",
        "done",
        "exhausted",
        "failed",
        "name",
        "rate_limited",
        "release",
        "revoked",
        "scope",
        "settle",
        "succeeded",
        "token",
        "waited",
    },
    "TokenPool": {
        "aclose",
        "acquire",
        "closed",
        "cool",
        "delete",
        "disable",
        "enable",
        "from_env",
        "from_file",
        "get",
        "head",
        "lease",
        "options",
        "patch",
        "post",
        "put",
        "reload",
        "reload_on_sighup",
        "replace_tokens",
        "request",
        "stats",
        "stream",
        "watch",
    },
}


def describe(qualname: str) -> str:
    """What ``SIGNATURES`` says of ``qualname``, read from the code."""
    owner, _, attr = qualname.partition(".")
    obj = getattr(aurora_async, owner)
    what = "class" if inspect.isclass(obj) else "def"
    if attr:
        member = inspect.getattr_static(obj, attr)
        if isinstance(member, property):
            return "property"
        if inspect.ismemberdescriptor(member):
            return "attribute"
        what = "classmethod" if isinstance(member, classmethod) else "def"
        obj = getattr(obj, attr)
        if inspect.iscoroutinefunction(obj):
            what = "async def"
    sig = inspect.signature(obj)
    bare = sig.replace(
        parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
        return_annotation=sig.empty,
    )
    return f"{what} {bare}"


def test_all_is_exactly_the_public_names() -> None:
    assert set(aurora_async.__all__) == PUBLIC_NAMES


@pytest.mark.parametrize("qualname", sorted(SIGNATURES))
def test_public_signature(qualname: str) -> None:
    assert describe(qualname) == SIGNATURES[qualname]


def public_attributes(cls: type, instance: object) -> set[str]:
    return {name for name in {*dir(cls), *dir(instance)} if not name.startswith("_")}


def test_token_pool_shows_only_its_public_api() -> None:
    pool = aurora_async.TokenPool(["tok-aaaaaaaa-1"])
    assert public_attributes(aurora_async.TokenPool, pool) == PUBLIC_ATTRIBUTES["TokenPool"]


def test_lease_shows_only_its_public_api() -> None:
    lease = aurora_async.TokenPool(["tok-aaaaaaaa-1"]).lease()
    assert public_attributes(aurora_async.Lease, lease) == PUBLIC_ATTRIBUTES["Lease"]
