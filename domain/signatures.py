"""Customer signatures: at which stage a visit is signed for, which visits need one before they complete, and how long
a signature pad's link stays good."""

from __future__ import annotations

import enum
from datetime import timedelta

from domain.kind_policy import KindsPolicy
from domain.model import ServiceKind, VisitStatus

LINK_TTL = timedelta(minutes=30)  # the customer signs while the technician stands there: a pad link need not live longer
SKIP_REASON_CHARS = 500
# a signature is asked for with the technician at the address: at delivery (the goods handed over) and at completion
SIGNING_STATES = (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)


class Stage(str, enum.Enum):
    DELIVERY = "delivery"  # the customer signs for the goods received
    COMPLETION = "completion"  # the customer signs the work off


class SignatureState(str, enum.Enum):
    """How a visit stands with its signature, as the technician's flow sees it (no entry: optional and none yet)."""

    REQUIRED = "required"  # the policy wants one and there is none yet: completion asks for it
    SIGNED = "signed"
    SKIPPED = "skipped"  # the customer could not sign; the technician gave the reason


def stage_for(kind: str) -> Stage:
    """A delivery is signed for as goods received; every other visit as work done."""
    return Stage.DELIVERY if kind == ServiceKind.DELIVERY.value else Stage.COMPLETION


class SignaturePolicy(KindsPolicy):
    """Which kinds of visit need the customer's signature before the technician completes them: none ("off", the
    default), every one ("all"), or the kinds named ("delivery,installation"). An order source may override the shop's."""

    NAME = "signatures"


def state_of(required: bool, signed: bool, skipped: bool) -> SignatureState | None:
    """A signature on file counts first; a skip answers a requirement; otherwise only a requirement is worth saying."""
    if signed:
        return SignatureState.SIGNED
    if skipped:
        return SignatureState.SKIPPED
    return SignatureState.REQUIRED if required else None
