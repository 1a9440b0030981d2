"""SQLAlchemy's compiled statements shared by every engine of a test process, not kept per engine.

SQLAlchemy compiles each statement once per engine (the engine's LRU of compiled SQL) and once per mapper and
dialect for the unit of work's INSERTs and UPDATEs, keyed by the dialect *object*. A service in production has one
engine for its life; the tests make an engine, hence a dialect, for every test, so every test compiled again the few
hundred statements it runs (about 28,000 compilations in the inner loop, a tenth of its time).

Here the dialect in those keys is replaced by what the compilation depends on: the dialect's class and its settings as
they stand after the first connection (server version, paramstyle, flags). Two engines whose dialects agree on all of
it share compiled statements; a dialect that differs in anything (another database, another server version, an option)
gets its own. The SQL executed is the same text with the same parameters either way.
"""

from __future__ import annotations

import types
import weakref
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.engine.base import Engine
from sqlalchemy.orm import Mapper
from sqlalchemy.util import LRUCache
from sqlalchemy.util.langhelpers import HasMemoized

_SIZE = 20_000  # every distinct statement of a test process (a few thousand), with room to spare
_PLAIN = (str, int, float, bool, bytes, type(None))


def _setting(value: Any) -> Any:
    """A dialect attribute as part of the key: plain values as they are, classes and functions by identity (they
    are module-level), tuples item by item, anything else (per-dialect helpers: the identifier preparer, the type
    compiler) only by its class."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, frozenset)):
        return type(value)(_setting(v) for v in value)
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)):
        return ("id", id(value))
    return ("of", type(value))


class _Signatures:
    def __init__(self) -> None:
        self._known: weakref.WeakKeyDictionary[Dialect, tuple[Any, tuple[Any, ...]]] = weakref.WeakKeyDictionary()

    def __call__(self, dialect: Dialect) -> tuple[Any, ...]:
        # taken again if the dialect's first connection (which sets the server version) came after the first look
        version = dialect.server_version_info
        known = self._known.get(dialect)
        if known is None or known[0] != version:
            settings = tuple(sorted((name, _setting(value)) for name, value in vars(dialect).items()))
            known = (version, (type(dialect), settings))
            self._known[dialect] = known
        return known[1]


_signature = _Signatures()


class SharedCompiledCache:
    """A compiled cache whose keys name the dialect by its signature instead of its identity."""

    def __init__(self, size: int) -> None:
        self._cache: LRUCache[Any, Any] = LRUCache(size)

    @staticmethod
    def _key(key: Any) -> Any:
        if isinstance(key, tuple) and key and isinstance(key[0], Dialect):
            return (_signature(key[0]), *key[1:])
        return key

    def get(self, key: Any, default: Any = None) -> Any:
        return self._cache.get(self._key(key), default)

    def __getitem__(self, key: Any) -> Any:
        return self._cache[self._key(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._cache[self._key(key)] = value

    def __contains__(self, key: Any) -> bool:
        return self._key(key) in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()


_engines = SharedCompiledCache(_SIZE)


def share_compiled_statements() -> None:
    """Every engine made from now on in this process, and every mapper's unit-of-work statements, use shared caches."""
    if getattr(Engine, "_compiled_cache_shared_by_tests", False):
        return
    original_init = Engine.__init__

    def __init__(self: Engine, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if self._compiled_cache is not None:  # an engine made with query_cache_size=0 keeps caching nothing
            self._compiled_cache = _engines

    Engine.__init__ = __init__  # type: ignore[method-assign]
    Engine._compiled_cache_shared_by_tests = True  # type: ignore[attr-defined]

    def _compiled_cache(self: Mapper[Any]) -> SharedCompiledCache:
        return SharedCompiledCache(max(self._compiled_cache_size, 1000))  # one for every test, not one per test

    # memoized like the original: made at a base mapper's first flush, then kept on the mapper
    Mapper._compiled_cache = HasMemoized.memoized_attribute(_compiled_cache)  # type: ignore[assignment,method-assign]
    for mapper in _mappers():
        mapper.__dict__.pop("_compiled_cache", None)  # a cache some flush made already, keyed by dialect objects


def _mappers() -> list[Mapper[Any]]:
    from sqlalchemy.orm import mapper as mapperlib

    registries = getattr(mapperlib, "_all_registries", lambda: ())()
    return [mapper for reg in registries for mapper in reg.mappers]
