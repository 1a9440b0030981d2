"""A small, hand-made week of visits for the reports' tests, written as the rows the app would have left behind."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from storage import tables as t

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 25)  # a Wednesday


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), TZ)


# what the set-up below must give for DAY (every region), and for Huangpu alone: see each visit's comment
EXPECTED_ALL = {"visits": 3, "done": 2, "on_time": (2, 3), "ftf": (1, 3), "csat": 3.5, "good": (1, 2), "accept": 10.0,
                "completion": 60.0, "exceptions": 2}
EXPECTED_HUANGPU = {"visits": 2, "done": 1, "on_time": (1, 2), "ftf": (1, 2), "exceptions": 1}


async def seed(sessions, created: datetime | None = None) -> dict[str, int]:
    """Two technicians in two regions on DAY:

    v1 Li, Huangpu sofa installation 09–11: offered 07:00 to Wang (declined), again 08:00 to Li, accepted 08:10 (10 min),
       in 10:30 (on time), done 11:30 (60 min on site), confirmed, rated 5; nothing follows it (fixed).
    v2 Li, Huangpu sofa delivery 14–16: offered 12:00, accepted 12:30 (30), in 16:20 (late), ended 17:00 needing a return
       visit (40 min; not fixed), which v3 is (no slot yet: not counted itself); a problem report (customer unreachable).
    v4 Wang, Pudong washer repair 09–11: offered 07:00, accepted 07:05 (5), in 09:30 (on time), done 10:30 (60), rated 2;
       the customer's next washer repair job comes 5 days later (not fixed within 30 days, fixed within 3);
       a problem report (parts missing).
    v5 cancelled that day, v6 ten days before: neither counts.
    """
    created = created or at(8, 0, DAY - timedelta(days=20))
    async with sessions() as session, session.begin():
        run = session.execute
        await run(insert(t.customers), [{"id": 1, "name": "Zhang", "phone": "1", "language": "en"},
                                        {"id": 2, "name": "Wu", "phone": "2", "language": "en"}])
        technician = {"phone": "0", "roles": [], "skills": [], "working_hours": {}, "on_duty": True, "language": "en"}
        await run(insert(t.technicians), [{**technician, "id": 1, "name": "Li Lei", "regions": ["Huangpu"]},
                                          {**technician, "id": 2, "name": "Wang Fang", "regions": ["Pudong"]}])
        job = {"source": "erp", "address_text": "x", "lat": 31.2, "lon": 121.4, "items": [], "notes": "", "status": "open",
               "brand": None, "product_name": "p"}
        await run(insert(t.jobs), [
            {**job, "id": 1, "external_ref": "J1", "customer_id": 1, "region": "Huangpu", "product_category": "sofa", "created_at": created},
            {**job, "id": 2, "external_ref": "J2", "customer_id": 2, "region": "Pudong", "product_category": "washer", "created_at": created},
            {**job, "id": 3, "external_ref": "J3", "customer_id": 2, "region": "Pudong", "product_category": "washer",
             "created_at": at(9, 0, DAY + timedelta(days=5))},
        ])
        visit = {"sequence": 1, "duration_minutes": 60, "declined_by": [], "checklist_position": 0, "crew_ids": [], "version": 0,
                 "technician_id": None, "slot_start": None, "slot_end": None, "follow_up_of_visit_id": None}
        await run(insert(t.visits), [
            {**visit, "id": 1, "job_id": 1, "kind": "installation", "status": "confirmed", "technician_id": 1, "slot_start": at(9), "slot_end": at(11)},
            {**visit, "id": 2, "job_id": 1, "kind": "delivery", "status": "return_needed", "technician_id": 1, "slot_start": at(14), "slot_end": at(16)},
            {**visit, "id": 3, "job_id": 1, "kind": "delivery", "status": "created", "follow_up_of_visit_id": 2},
            {**visit, "id": 4, "job_id": 2, "kind": "repair", "status": "confirmed", "technician_id": 2, "slot_start": at(9), "slot_end": at(11)},
            {**visit, "id": 5, "job_id": 2, "kind": "inspection", "status": "cancelled", "technician_id": 2, "slot_start": at(14), "slot_end": at(16)},
            {**visit, "id": 6, "job_id": 2, "kind": "repair", "status": "confirmed", "technician_id": 2,
             "slot_start": at(9, 0, DAY - timedelta(days=10)), "slot_end": at(11, 0, DAY - timedelta(days=10))},
            {**visit, "id": 7, "job_id": 3, "kind": "repair", "status": "created"},
        ])

        def stamp(job_id: int, visit_id: int, kind: str, moment: datetime) -> dict:
            return {"job_id": job_id, "visit_id": visit_id, "type": kind, "data": {}, "occurred_at": moment}

        await run(insert(t.domain_events), [
            stamp(1, 1, "OfferMade", at(7)), stamp(1, 1, "OfferDeclined", at(7, 20)), stamp(1, 1, "OfferMade", at(8)),
            stamp(1, 1, "VisitAccepted", at(8, 10)), stamp(1, 1, "VisitCheckedIn", at(10, 30)), stamp(1, 1, "VisitCompleted", at(11, 30)),
            stamp(1, 2, "OfferMade", at(12)), stamp(1, 2, "VisitAccepted", at(12, 30)), stamp(1, 2, "VisitCheckedIn", at(16, 20)),
            stamp(1, 2, "ReturnVisitNeeded", at(17)),
            stamp(2, 4, "OfferMade", at(7)), stamp(2, 4, "VisitAccepted", at(7, 5)), stamp(2, 4, "VisitCheckedIn", at(9, 30)),
            stamp(2, 4, "VisitCompleted", at(10, 30)),
            stamp(2, 5, "OfferMade", at(7)), stamp(2, 5, "VisitAccepted", at(9)),  # cancelled later: not counted
        ])
        await run(insert(t.ratings), [
            {"job_id": 1, "visit_id": 1, "customer_id": 1, "score": 5, "comment": "", "created_at": at(12)},
            {"job_id": 2, "visit_id": 4, "customer_id": 2, "score": 2, "comment": "", "created_at": at(12)},
        ])
        report = {"note": "", "photo_ids": [], "status": "open"}
        await run(insert(t.problem_reports), [
            {**report, "visit_id": 2, "technician_id": 1, "reason": "customer_unreachable", "created_at": at(16, 30)},
            {**report, "visit_id": 4, "technician_id": 2, "reason": "parts_missing", "created_at": at(10)},
        ])
    return {"customers": 2, "jobs": 3}
