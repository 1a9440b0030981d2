"""FastAPI's route handlers built once per test process, not once per app: the tests build an app for every test.

FastAPI (0.16x) builds an included route's handler (its dependant and a pydantic adapter for every parameter and
response) lazily, per app, on the first request that walks past it: about 0.1-0.3 s of CPU per app, which the
tests paid in every API test. An app in production is built once. The routers are module-level, and what a handler
is built from (the route and how its router was included) is the same in every app, so the tests share it.
The one thing of the app it holds is ``dependency_overrides_provider``: nothing here overrides a dependency, and
an app that does gets its own handlers (below), so a shared handler never hides an override.
"""

from __future__ import annotations

import copy
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


# --- the OpenAPI schema ----------------------------------------------------------------------------------------------
#
# FastAPI computes an app's schema at its first /openapi.json (about 0.4 s of CPU: a JSON schema for every model of every
# route), and the tests that read it each have an app of their own. With the handlers shared (above), two apps built
# from the same routers hold the very same route objects, so their schemas are the same: computed once per process.

_schemas: dict[tuple, tuple[list[Any], dict[str, Any]]] = {}


def _schema_key(kwargs: dict[str, Any]) -> tuple[tuple, list[Any]] | None:
    """What the schema is computed from: the app's settings and the identity of each route in it (kept alive by the
    cache, so that no identity is reused). None where a route in the schema is the app's own (not shared): not cached."""
    kept: list[Any] = []
    parts: list[Any] = []
    for name, value in sorted(kwargs.items()):
        if name in ("routes", "webhooks"):
            for context in routing.iter_route_contexts(list(value or ())):
                route = context.original_route
                if not isinstance(route, routing.APIRoute) or not route.include_in_schema:
                    continue  # outside the schema (pages with include_in_schema=False, mounts, the docs)
                effective = getattr(context, "_route_context", None)
                if effective is None or not getattr(_EffectiveRouteContext, "_shared_by_tests", False):
                    return None
                kept.append(effective)
                parts.append((name, id(effective)))
        else:
            parts.append((name, repr(value)))
    return tuple(parts), kept


def _cached_get_openapi(original: Any):
    def get_openapi(**kwargs: Any) -> dict[str, Any]:
        found = _schema_key(kwargs)
        if found is None:
            return original(**kwargs)
        key, kept = found
        if key not in _schemas:
            _schemas[key] = (kept, original(**kwargs))
        return copy.deepcopy(_schemas[key][1])  # each app gets a schema of its own to change, as before

    get_openapi.shared_by_tests = True  # type: ignore[attr-defined]
    return get_openapi


def share_openapi_schemas() -> None:
    """FastAPI.openapi() calls fastapi.applications.get_openapi: made to remember its answer per route set."""
    from fastapi import applications

    if not getattr(applications.get_openapi, "shared_by_tests", False):
        applications.get_openapi = _cached_get_openapi(applications.get_openapi)
