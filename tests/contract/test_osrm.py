"""The OSRM travel-time provider against a fake OSRM /table server: blocks, minutes, unroutable pairs, errors."""

from __future__ import annotations


import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scheduler.routing.travel import HaversineProvider, OsrmTableError, OsrmTableProvider

@pytest.fixture
async def fake_osrm():
    """An OSRM-compatible /table endpoint on 127.0.0.1: 60 s per 0.01 degree of longitude, null across 'the river'."""
    calls: list[dict] = []

    async def table(request: web.Request) -> web.Response:
        coords = [tuple(map(float, pair.split(","))) for pair in request.match_info["coords"].split(";")]
        sources = [int(i) for i in request.query["sources"].split(";")]
        targets = [int(i) for i in request.query["destinations"].split(";")]
        calls.append({"profile": request.match_info["profile"], "n": len(coords), "annotations": request.query.get("annotations")})
        if any(lon > 179 for lon, _ in coords):
            return web.json_response({"code": "InvalidQuery", "message": "bad coordinate"}, status=400)
        rows = []
        for s in sources:
            row = []
            for t in targets:
                (lon1, lat1), (lon2, lat2) = coords[s], coords[t]
                row.append(None if (lat1 > 50) != (lat2 > 50) else round(abs(lon1 - lon2) * 6000, 3))
            rows.append(row)
        return web.json_response({"code": "Ok", "durations": rows})

    app = web.Application()
    app.router.add_get("/table/v1/{profile}/{coords}", table)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")), calls
    finally:
        await server.close()


async def test_the_osrm_provider_builds_the_matrix_in_blocks_in_minutes(fake_osrm):
    url, calls = fake_osrm
    points = [(10.0, 0.00), (10.0, 0.01), (10.0, 0.03), (10.0, 0.06), (10.0, 0.10)]
    provider = OsrmTableProvider(url, block=2)
    matrix = await provider.matrix(points)
    assert len(calls) == 9 and all(c["profile"] == "driving" and c["annotations"] == "duration" for c in calls)
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            assert matrix[i][j] == pytest.approx(abs(a[1] - b[1]) * 100, abs=1e-6)  # minutes
    assert provider.fallbacks == 0


async def test_the_osrm_provider_falls_back_to_straight_lines_for_unroutable_pairs(fake_osrm):
    url, _ = fake_osrm
    points = [(10.0, 0.0), (60.0, 0.0)]
    provider = OsrmTableProvider(url)
    matrix = await provider.matrix(points)
    assert provider.fallbacks == 2
    assert matrix[0][1] == pytest.approx(HaversineProvider().durations(points)[0][1])


async def test_the_osrm_provider_reports_errors(fake_osrm):
    url, _ = fake_osrm
    with pytest.raises(OsrmTableError):
        await OsrmTableProvider(url).matrix([(0.0, 0.0), (0.0, 180.0)])
