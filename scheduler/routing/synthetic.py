"""A seeded synthetic field day (deliveries, linked installations, repairs) for benchmarks and property tests."""

from __future__ import annotations

import random

from scheduler.routing.model import Break, Problem, Technician, Visit, Window
from scheduler.routing.travel import HaversineProvider

CENTER = (31.2304, 121.4737)  # a dense city; about 16 km across
SPAN_DEG = (0.072, 0.084)  # latitude, longitude half-widths
REGIONS = ("north-west", "north-east", "south-west", "south-east")
DAY = (8 * 60, 18 * 60)  # minutes from midnight
LUNCH = Break(11 * 60 + 30, 13 * 60 + 30, 30)
SLOTS = ((8 * 60, 10 * 60), (10 * 60, 12 * 60), (13 * 60, 15 * 60), (15 * 60, 17 * 60))
HALF_DAYS = ((8 * 60, 12 * 60), (13 * 60, 17 * 60))


def _region(lat: float, lon: float) -> str:
    north = lat >= CENTER[0]
    east = lon >= CENTER[1]
    return REGIONS[(0 if north else 2) + (1 if east else 0)]


def field_day(visits: int = 1000, technicians: int = 50, seed: int = 7, speed_kmh: float = 30.0) -> Problem:
    """`visits` stops for `technicians` people: 30% deliveries, as many linked installations, the rest repairs.

    Deliveries need a van with room (volume), 8% need two people; installations wait at least 30 minutes
    after their delivery (10% by the same person); repairs need the right trade (a fifth only
    air-conditioning specialists), a tenth are optional; everybody works one or two regions of the city,
    08:00-18:00 with a 30-minute lunch break starting 11:30-13:30.
    """
    rng = random.Random(seed)
    points: list[tuple[float, float]] = []

    def place() -> int:
        lat = CENTER[0] + rng.uniform(-SPAN_DEG[0], SPAN_DEG[0])
        lon = CENTER[1] + rng.uniform(-SPAN_DEG[1], SPAN_DEG[1])
        points.append((lat, lon))
        return len(points) - 1

    depots = [place() for _ in range(3)]  # warehouses where the vans load
    techs: list[Technician] = []
    kinds = ["driver"] * 3 + ["driver-installer"] * 3 + ["installer"] * 2 + ["repairer"] * 2
    for k in range(technicians):
        kind = kinds[k % len(kinds)]
        skills = {
            "driver": {"delivery", "repair"},
            "driver-installer": {"delivery", "install"},
            "installer": {"install", "repair"},
            "repairer": {"repair", "ac"},
        }[kind]
        home = rng.choice(depots) if "driver" in kind else place()
        first = REGIONS[k % 4]
        regions = {first, REGIONS[(k + 1) % 4]} if rng.random() < 0.8 else {first}
        capacity = (30,) if "delivery" in skills else (0,)
        techs.append(Technician(f"t{k:03d}", home, home, DAY, (LUNCH,), frozenset(skills), frozenset(regions), capacity))

    out: list[Visit] = []
    windows: tuple[Window, ...]
    deliveries = int(visits * 0.3)  # each with its installation
    repairs = visits - 2 * deliveries
    for k in range(deliveries):
        at = place()
        lat, lon = points[at]
        region = _region(lat, lon)
        windows = (rng.choice(SLOTS[:3]),) if rng.random() < 0.6 else (rng.choice(HALF_DAYS),)
        crew = 2 if rng.random() < 0.08 else 1
        out.append(Visit(f"d{k:03d}", at, rng.choice((10, 15)), windows, (rng.randint(1, 3),), frozenset({"delivery"}), region, crew))
        same_crew = rng.random() < 0.1 and crew == 1
        skills = {"delivery", "install"} if same_crew else {"install"}
        out.append(
            Visit(
                f"i{k:03d}",
                at,
                rng.choice((15, 20)),
                ((windows[0][0] + 60, DAY[1] - 30),),  # the customer keeps the rest of that day free
                (0,),
                frozenset(skills),
                region,
                after=f"d{k:03d}",
                min_gap=30,
                same_crew=same_crew,
            )
        )
    for k in range(repairs):
        at = place()
        lat, lon = points[at]
        r = rng.random()
        if r < 0.3:
            windows = ()
        elif r < 0.55:
            windows = (rng.choice(SLOTS),)
        elif r < 0.85:
            windows = (rng.choice(HALF_DAYS),)
        else:
            windows = (SLOTS[0], SLOTS[3])  # early or late, not in between
        skills = {"repair", "ac"} if rng.random() < 0.2 else {"repair"}
        optional = rng.random() < 0.1  # preventive maintenance: nice to do today
        out.append(
            Visit(
                f"r{k:03d}",
                at,
                rng.choice((10, 15)),
                windows,
                (0,),
                frozenset(skills),
                _region(lat, lon),
                priority=rng.choice((1, 1, 1, 2, 3)),
                penalty=60.0 if optional else None,
            )
        )
    matrix = HaversineProvider(speed_kmh=speed_kmh).durations(points)
    return Problem(tuple(out), tuple(techs), matrix, now=DAY[0], capacity_names=("volume_m3",))
