"""Solomon VRPTW instances: text parser, an independent feasibility checker and a greedy baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scheduler.routing.model import Plan, Problem, Technician, Visit

# Float slack for comparisons: the checker works on real distances, the solver on scaled integers.
EPS = 1e-6


@dataclass(frozen=True)
class Node:
    number: int
    x: float
    y: float
    demand: int
    ready: float
    due: float
    service: float


@dataclass(frozen=True)
class Instance:
    name: str
    vehicles: int
    capacity: int
    nodes: tuple[Node, ...]  # nodes[0] is the depot, nodes[i].number == i

    @property
    def customers(self) -> range:
        return range(1, len(self.nodes))

    def distance(self, i: int, j: int) -> float:
        a, b = self.nodes[i], self.nodes[j]
        return math.hypot(a.x - b.x, a.y - b.y)

    def matrix(self) -> list[list[float]]:
        # numpy for speed at 1,000 customers (a million pairs); the same hypot as distance()
        xy = np.asarray([(node.x, node.y) for node in self.nodes], dtype=float)
        out: list[list[float]] = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]).tolist()
        return out


def parse(text: str, name: str | None = None) -> Instance:
    """Reads the standard layout: a name line, VEHICLE / NUMBER CAPACITY, CUSTOMER, one 7-number row per node."""
    lines = [line.split() for line in text.splitlines()]
    lines = [tokens for tokens in lines if tokens]
    if not lines:
        raise ValueError("empty Solomon instance")
    title = name or lines[0][0]
    vehicles = capacity = None
    rows: list[Node] = []
    for tokens in lines[1:]:
        if not all(_is_number(t) for t in tokens):
            continue
        if len(tokens) == 2 and vehicles is None:
            vehicles, capacity = int(tokens[0]), int(tokens[1])
        elif len(tokens) == 7:
            number, x, y, demand, ready, due, service = (float(t) for t in tokens)
            rows.append(Node(int(number), x, y, int(demand), ready, due, service))
    if vehicles is None or capacity is None or not rows:  # both come from the vehicle line
        raise ValueError(f"{title}: not a Solomon instance (no vehicle line or no nodes)")
    rows.sort(key=lambda node: node.number)
    if [node.number for node in rows] != list(range(len(rows))):
        raise ValueError(f"{title}: node numbers must run 0..n-1")
    return Instance(title, vehicles, capacity, tuple(rows))


def load(path: str | Path) -> Instance:
    path = Path(path)
    return parse(path.read_text(), name=path.stem)


def truncate(instance: Instance, customers: int) -> Instance:
    """The depot and the first `customers` customers: a small slice for fast tests."""
    return Instance(f"{instance.name}-{customers}", instance.vehicles, instance.capacity, instance.nodes[: customers + 1])


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Check:
    feasible: bool
    distance: float
    vehicles: int
    violations: tuple[str, ...]


def check(instance: Instance, routes: list[list[int]]) -> Check:
    """Verifies routes (customer numbers, depot left out) from scratch, with real Euclidean distances.

    Deliberately shares no code with the solver: travel time equals distance, a vehicle may wait
    for a ready time, must start service by the due date and must be back at the depot by its due date.
    """
    violations: list[str] = []
    depot = instance.nodes[0]
    seen: dict[int, int] = {}
    total = 0.0
    used = [route for route in routes if route]
    if len(used) > instance.vehicles:
        violations.append(f"{len(used)} routes but only {instance.vehicles} vehicles")
    for r, route in enumerate(used):
        load = 0
        time = depot.ready
        previous = 0
        for customer in route:
            if customer not in instance.customers:
                violations.append(f"route {r}: unknown customer {customer}")
                continue
            seen[customer] = seen.get(customer, 0) + 1
            node = instance.nodes[customer]
            leg = instance.distance(previous, customer)
            total += leg
            arrival = time + leg
            start = max(arrival, node.ready)
            if start > node.due + EPS:
                violations.append(f"route {r}: customer {customer} starts at {start:.3f} after its due date {node.due:g}")
            load += node.demand
            time = start + node.service
            previous = customer
        leg = instance.distance(previous, 0)
        total += leg
        if time + leg > depot.due + EPS:
            violations.append(f"route {r}: back at the depot at {time + leg:.3f} after {depot.due:g}")
        if load > instance.capacity:
            violations.append(f"route {r}: load {load} over capacity {instance.capacity}")
    for customer in instance.customers:
        count = seen.get(customer, 0)
        if count != 1:
            violations.append(f"customer {customer} served {count} times")
    return Check(not violations, total, len(used), tuple(violations))


def greedy(instance: Instance) -> list[list[int]]:
    """Nearest feasible neighbour: grow one route at a time with the closest customer that still fits."""
    left = set(instance.customers)
    depot = instance.nodes[0]
    routes: list[list[int]] = []
    while left:
        route: list[int] = []
        time, load, here = depot.ready, 0, 0
        while True:
            best, best_key = None, None
            for c in left:
                node = instance.nodes[c]
                start = max(time + instance.distance(here, c), node.ready)
                back = start + node.service + instance.distance(c, 0)
                if start > node.due or back > depot.due or load + node.demand > instance.capacity:
                    continue
                key = (start - time, c)  # closest in time, waiting included
                if best_key is None or key < best_key:
                    best, best_key = c, key
            if best is None:
                break
            node = instance.nodes[best]
            time = max(time + instance.distance(here, best), node.ready) + node.service
            load += node.demand
            here = best
            route.append(best)
            left.discard(best)
        if not route:  # a customer no vehicle can reach in time: leave it to the checker to report
            break
        routes.append(route)
    return routes


def to_problem(instance: Instance, resolution: int = 1000) -> Problem:
    """The instance as a field-service problem: every customer a must-do visit, every vehicle a technician."""
    depot = instance.nodes[0]
    visits = tuple(
        Visit(id=str(node.number), location=node.number, service=node.service, windows=((node.ready, node.due),), demand=(node.demand,))
        for node in instance.nodes[1:]
    )
    technicians = tuple(
        Technician(id=f"v{k}", start_location=0, end_location=0, shift=(depot.ready, depot.due), capacity=(instance.capacity,))
        for k in range(instance.vehicles)
    )
    return Problem(visits, technicians, instance.matrix(), capacity_names=("load",), resolution=resolution)


def routes_of(plan: Plan) -> list[list[int]]:
    """Customer numbers per route, for the checker."""
    return [[int(stop.visit_id) for stop in route.stops] for route in plan.routes if route.stops]
