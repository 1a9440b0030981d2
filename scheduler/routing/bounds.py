"""Lower bounds on a day's objective, so that a search which reaches one stops: nothing strictly better exists.

Both engines keep their best solution and replace it only by a strictly cheaper one, so stopping at a proven
lower bound returns exactly the plan a search run to its time limit would return, only sooner. On the small days
of chat replans (one to four visits, often with no driving at all) the bound is usually met by the first
solution, where the search would otherwise spend its whole time limit finding nothing better.

Each bound is returned doubled (an integer): the travel part counts half of each visit's cheapest arc in and out.
Above SMALL_DAY visits the bound is 0 (never wrong: no cost is negative): a big day never reaches a useful bound, and
its matrices are too big to copy for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyvrp

SMALL_DAY = 200  # visits (OR-Tools: visit nodes, one per crew member)


def _cheapest_in_out(matrices: Sequence[np.ndarray], sources: Sequence[int], targets: Sequence[int], nodes: Sequence[int],
                     shared: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``nodes``: its cheapest arc in (from ``sources``) and out (to ``targets``), over every matrix (a
    node's route may use any of them). A node's arc to itself does not count, unless the node is ``shared`` (a
    place with two stops: the arc between them is that diagonal)."""
    node_index = np.asarray(nodes, dtype=np.int64)
    source_index = np.asarray(sources, dtype=np.int64)
    target_index = np.asarray(targets, dtype=np.int64)
    alone = ~np.isin(node_index, np.asarray(list(shared), dtype=np.int64))
    big = np.iinfo(np.int64).max
    ins = np.full(len(nodes), big, dtype=np.int64)
    outs = ins.copy()
    for matrix in matrices:
        into = np.asarray(matrix)[np.ix_(source_index, node_index)].astype(np.int64)
        out_of = np.asarray(matrix)[np.ix_(node_index, target_index)].astype(np.int64)
        into = np.where((source_index[:, None] == node_index[None, :]) & alone[None, :], big, into)
        out_of = np.where((node_index[:, None] == target_index[None, :]) & alone[:, None], big, out_of)
        ins = np.minimum(ins, into.min(axis=0))
        outs = np.minimum(outs, out_of.min(axis=1))
    return ins, outs


def pyvrp_doubled(data: pyvrp.ProblemData) -> int:
    """Twice a lower bound on PyVRP's cost of any feasible solution of ``data`` (see ``CostEvaluator.cost``):
    each route's fixed, distance and overtime costs plus the uncollected prizes.

    Per client: either its prize (optional clients only) or, served, half its cheapest arc in and out at the
    cheapest distance cost, plus the overtime its service alone forces (a route's overtime is at least the sum,
    over its clients, of each one's service above the shift). Per day with a required client: one route's fixed
    cost and half its cheapest arcs out of and into its depots. Duration costs are left out (zero here)."""
    clients = data.clients()
    vehicle_types = data.vehicle_types()
    if not clients or not vehicle_types or data.num_shipments or len(clients) > SMALL_DAY:
        return 0  # nothing to bound (costs are never negative), shipments (not modelled here), or a big day
    everything = list(range(data.num_locations))
    places = [c.location for c in clients]
    stops = places + [d.location for d in data.depots()]
    shared = [place for place in set(stops) if stops.count(place) > 1]
    matrices = [np.asarray(data.distance_matrix(p)) for p in range(data.num_profiles)]
    ins, outs = _cheapest_in_out(matrices, everything, everything, places, shared)
    distance_cost = min(vt.unit_distance_cost for vt in vehicle_types)
    total = 0
    for k, client in enumerate(clients):
        overtime = min(vt.unit_overtime_cost * max(0, client.service_duration - vt.shift_duration) for vt in vehicle_types)
        served = distance_cost * (int(ins[k]) + int(outs[k])) + 2 * overtime
        total += served if client.required else min(2 * client.prize, served)
    if any(c.required for c in clients):
        depots = data.depots()
        total += min(
            2 * vt.fixed_cost + vt.unit_distance_cost * (
                min(int(m[depots[vt.start_depot].location, n]) for m in matrices for n in places)
                + min(int(m[n, depots[vt.end_depot].location]) for m in matrices for n in places)
            )
            for vt in vehicle_types
        )
    return total


def ortools_doubled(travel: np.ndarray, visit_nodes: Sequence[int], starts: Sequence[int], ends: Sequence[int], service: np.ndarray,
                    drop_cost: Sequence[int], arc_scale: int, fairness: tuple[int, int] | None) -> int:
    """Twice a lower bound on the OR-Tools model's objective: arc costs (``travel`` in model nodes, times
    ``arc_scale``), the penalty of each node left out, and each technician's work above the fairness target
    (``fairness``: (target, cost per unit above it), or None).

    Per visit node: either its drop cost, or half its cheapest arc in (from visits and starts) and out (to visits
    and ends) plus the work above the target its service alone forces. When anything is served, one route's
    cheapest arcs out of its start and into its end count too; when nothing is, every drop cost does."""
    if not visit_nodes or len(visit_nodes) > SMALL_DAY:
        return 0
    ins, outs = _cheapest_in_out([travel], list(visit_nodes) + list(starts), list(visit_nodes) + list(ends), visit_nodes)
    target, per_unit = fairness if fairness is not None else (0, 0)
    some_served = 0
    for k, node in enumerate(visit_nodes):
        served = arc_scale * (int(ins[k]) + int(outs[k])) + 2 * per_unit * max(0, int(service[node]) - target)
        some_served += min(2 * int(drop_cost[k]), served)
    some_served += arc_scale * min(
        min(int(travel[start, n]) for n in visit_nodes) + min(int(travel[n, end]) for n in visit_nodes) for start, end in zip(starts, ends)
    )
    return min(some_served, 2 * sum(int(c) for c in drop_cost))
