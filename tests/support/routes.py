"""FastAPI's route handlers built once per test process, not once per app: the tests build an app for every test.

FastAPI (0.16x) builds an included route's handler (its dependant and a pydantic adapter for every parameter and
response) lazily, per app, on the first request that walks past it: about 0.1-0.3 s of CPU per app, which the
tests paid in every API test. An app in production is built once. The routers are module-level, and what a handler
is built from (the route and how its router was included) is the same in every app, so the tests share it.
The one thing of the app it holds is ``dependency_overrides_provider``: nothing here overrides a dependency, and
an app that does gets its own handlers (below), so a shared handler never hides an override.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from fastapi import routing
from fastapi.datastructures import DefaultPlaceholder

_EffectiveRouteContext = getattr(routing, "_EffectiveRouteContext", None)
_built: dict[tuple, tuple[Any, Any]] = {}


def _frozen(value: Any) -> Any:
    """A hashable stand-in for one field of an include context: equal for equal inclusions in two apps."""
    if isinstance(value, (str, int, float, bool, Enum)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple((_frozen(k), _frozen(v)) for k, v in value.items())
    if isinstance(value, DefaultPlaceholder):  # made anew at each include_router call, equal by value
        return ("default", _frozen(value.value))
    return id(value)  # routers, dependencies, classes, functions: module-level; the key's context keeps them alive


def _shared_from_api_route(original: Any):
    def from_api_route(cls, *, original_route, include_context):
        provider = include_context.dependency_overrides_provider
        if getattr(provider, "dependency_overrides", None):
            return original(original_route=original_route, include_context=include_context)
        neutral = dataclasses.replace(include_context, dependency_overrides_provider=None)
        key = (id(original_route), *(_frozen(getattr(neutral, f.name)) for f in dataclasses.fields(neutral)))
        if key not in _built:
            # kept with the context it was built from, so that no id in the key is freed and reused
            _built[key] = (neutral, original(original_route=original_route, include_context=neutral))
        return _built[key][1]

    return classmethod(from_api_route)


def share_route_handlers() -> None:
    """Install the sharing once per process; a FastAPI without these internals simply builds handlers as before."""
    if _EffectiveRouteContext is None or getattr(_EffectiveRouteContext, "_shared_by_tests", False):
        return
    original = _EffectiveRouteContext.from_api_route  # bound to the class: called with keywords only
    _EffectiveRouteContext.from_api_route = _shared_from_api_route(original)
    _EffectiveRouteContext._shared_by_tests = True
