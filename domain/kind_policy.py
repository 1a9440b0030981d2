"""A per-visit-kind policy as a shop writes it: "off", "all", or the service kinds named ("delivery,installation"); the
shop sets the default and an order source may override it (completion codes and signatures both read this way)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from domain.errors import InvalidInput
from domain.model import ServiceKind

OFF, ALL = "off", "all"
MAX_SOURCE = 100  # characters of an order source's name
P = TypeVar("P", bound="KindsPolicy")


@dataclass(frozen=True)
class KindsPolicy:
    kinds: frozenset[str] = frozenset()
    NAME: ClassVar[str] = "policy"  # what a refused text names (a setting's or an API field's subject)

    @classmethod
    def parse(cls: type[P], text: str) -> P:
        words = [w.strip().lower() for w in (text or "").split(",") if w.strip()]
        if not words or words == [OFF]:
            return cls()
        known = {kind.value for kind in ServiceKind}
        if words == [ALL]:
            return cls(frozenset(known))
        unknown = [w for w in words if w not in known]
        if unknown:
            raise ValueError(f"{cls.NAME}: {', '.join(unknown)} is not off, all or a service kind ({', '.join(sorted(known))})")
        return cls(frozenset(words))

    def requires(self, kind: str) -> bool:
        return kind in self.kinds

    @property
    def text(self) -> str:
        if not self.kinds:
            return OFF
        if self.kinds == {kind.value for kind in ServiceKind}:
            return ALL
        return ",".join(sorted(self.kinds))


def policy_for(default: P, overrides: Mapping[str, str], source: str) -> P:
    """The source's own policy where it has one, else the shop's default."""
    override = overrides.get(source)
    return type(default).parse(override) if override is not None else default


def source_override(policy_type: type[KindsPolicy], source: str, policy: str | None, invalid: str) -> tuple[str, str | None]:
    """An order source's override as it is stored: the source's name checked, the policy in its normal form (None: back
    to the shop's default); a policy that does not read is refused with the ``invalid`` code."""
    name = source.strip()
    if not name or len(name) > MAX_SOURCE:
        raise InvalidInput("source_invalid")
    if policy is None:
        return name, None
    try:
        return name, policy_type.parse(policy).text
    except ValueError as exc:
        raise InvalidInput(invalid) from exc
