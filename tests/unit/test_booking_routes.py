"""Booking checks a new visit against the routes as planned, not against a fresh greedy guess."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from domain.model import Visit
from scheduler.routing import model as rm
from scheduler.routing.insertion import greedy_plan, slot_options
from services.booking import _without, planned_routes
from services.planning import DayProblem

DAY = date(2026, 11, 24)
MIDNIGHT = datetime(2026, 11, 24, tzinfo=timezone.utc)
# The technician's home (0) sits between A (1) and B (2), an hour from each; N (3) is where A is.
TRAVEL = [
    [0, 60, 60, 60],
    [60, 0, 120, 0],
    [60, 120, 0, 120],
    [60, 0, 120, 0],
]
MORNING = ((540.0, 780.0),)  # a 09:00–13:00 window


def day(planned: dict[str, float | None], *, pinned: bool = True) -> DayProblem:
    routing = tuple(
        rm.Visit(id=vid, location=location, service=60, windows=MORNING, pinned_technicians=("1",) if pinned else ())
        for vid, location in (("A", 1), ("B", 2))
    )
    technician = rm.Technician(id="1", start_location=0, end_location=0, shift=(480.0, 1080.0))
    problem = rm.Problem(routing, (technician,), TRAVEL)
    visits = {
        vid: Visit(job_id=1, kind="installation", sequence=1, duration_minutes=60, technician_id=1,
                   planned_start=None if start is None else MIDNIGHT + timedelta(minutes=start))
        for vid, start in planned.items()
    }
    return DayProblem(DAY, MIDNIGHT, problem, visits, {}, {}, first_extra=4)


# four hours at A's place, starting 13:00–14:00, home by 18:00: only fits when the route ends at A by 13:00
NEW = rm.Visit(id="N", location=3, service=240, windows=((780.0, 840.0),))


def stops(plan: rm.Plan) -> list[str]:
    route = plan.route_of("1")
    return [stop.visit_id for stop in route.stops] if route else []


def test_the_planned_order_is_kept_and_decides_which_slots_are_offered():
    dp = day({"A": 725.0, "B": 545.0})  # the plan drives to B first, then to A
    assert stops(planned_routes(dp)) == ["B", "A"]
    assert slot_options(dp.problem, planned_routes(dp), NEW) != []
    # a greedy guess at the same day takes A first and would have turned the customer away
    assert stops(greedy_plan(dp.problem)) == ["A", "B"]
    assert slot_options(dp.problem, greedy_plan(dp.problem), NEW) == []


def test_visits_without_a_current_plan_are_slotted_in_where_they_cost_least():
    # B was planned; A was booked after the plan ran (no start) and goes where it adds the least driving
    dp = day({"A": None, "B": 545.0})
    assert sorted(stops(planned_routes(dp))) == ["A", "B"]
    # a planned start outside the window belongs to a slot the visit has left: it is planned afresh
    moved = day({"A": 725.0, "B": 1000.0})
    assert sorted(stops(planned_routes(moved))) == ["A", "B"]


def test_unassigned_bookings_are_placed_on_some_route_too():
    dp = day({"A": None, "B": None}, pinned=False)
    plan = planned_routes(dp)
    assert sorted(stops(plan)) == ["A", "B"]


def test_the_visit_being_placed_does_not_take_its_own_room():
    # one technician, one long booked visit not yet given to anyone: checking it must not find it in the way
    long = rm.Visit(id="L", location=1, service=480, windows=((540.0, 560.0),))
    technician = rm.Technician(id="1", start_location=0, end_location=0, shift=(480.0, 1080.0))
    visit = Visit(job_id=1, kind="installation", sequence=1, duration_minutes=480)
    dp = DayProblem(DAY, MIDNIGHT, rm.Problem((long,), (technician,), TRAVEL), {"L": visit}, {}, {}, first_extra=4)
    candidate = rm.Visit(id="new", location=1, service=480, windows=((540.0, 560.0),))
    assert slot_options(dp.problem, planned_routes(dp), candidate) == []  # counted twice, it cannot fit
    alone = _without(dp, "L")
    assert [o.technician_ids for o in slot_options(alone.problem, planned_routes(alone), candidate)] == [("1",)]
