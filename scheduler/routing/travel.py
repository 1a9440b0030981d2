"""Travel-time matrices (minutes) for the solver: straight-line by default, an OSRM-compatible table service as an option."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import httpx
import numpy as np

Point = tuple[float, float]  # (latitude, longitude) in degrees
EARTH_RADIUS_KM = 6371.0088


class TravelProvider(Protocol):
    """Anything that turns points into a square matrix of driving minutes (row: from, column: to)."""

    async def matrix(self, points: Sequence[Point]) -> list[list[float]]: ...


def haversine_km(a: Point, b: Point) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class HaversineProvider:
    """Great-circle distance times a detour factor (roads are not straight) at a configured average speed."""

    speed_kmh: float = 30.0
    detour: float = 1.3

    def durations(self, points: Sequence[Point]) -> list[list[float]]:
        # haversine_km, vectorised: a 3,000-stop day is nine million pairs (12 s in pure Python)
        factor = self.detour / self.speed_kmh * 60.0
        if not points:
            return []
        rad = np.radians(np.asarray(points, dtype=float))
        lat, lon = rad[:, 0], rad[:, 1]
        out: list[list[float]] = []
        # A block of rows at a time: the whole square's temporaries were 200 MiB at 3,000 stops.
        for low in range(0, len(lat), 256):
            la, lo = lat[low : low + 256, None], lon[low : low + 256, None]
            h = np.sin((lat[None, :] - la) / 2) ** 2 + np.cos(la) * np.cos(lat[None, :]) * np.sin((lon[None, :] - lo) / 2) ** 2
            km = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))
            out += (km * factor).tolist()
        return out

    async def matrix(self, points: Sequence[Point]) -> list[list[float]]:
        return self.durations(points)


class OsrmTableError(RuntimeError):
    pass


@dataclass
class OsrmTableProvider:
    """OSRM's /table service (or anything that speaks it). Large sets go in blocks of `block` sources × destinations.

    OSRM answers `null` for pairs it cannot route; those fall back to the straight-line estimate so that the
    solver still gets a full matrix (and the gap is visible in `fallbacks`).
    """

    base_url: str
    profile: str = "driving"
    block: int = 100  # OSRM's default --max-table-size
    timeout_s: float = 10.0
    fallback: HaversineProvider = HaversineProvider()
    client: httpx.AsyncClient | None = None
    fallbacks: int = 0

    async def matrix(self, points: Sequence[Point]) -> list[list[float]]:
        n = len(points)
        out = [[0.0] * n for _ in range(n)]
        if n == 0:
            return out
        self.fallbacks = 0
        own = self.client is None
        client = self.client or httpx.AsyncClient(timeout=self.timeout_s)
        try:
            for src0 in range(0, n, self.block):
                sources = list(range(src0, min(n, src0 + self.block)))
                for dst0 in range(0, n, self.block):
                    targets = list(range(dst0, min(n, dst0 + self.block)))
                    rows = await self._block(client, points, sources, targets)
                    for i, row in zip(sources, rows):
                        for j, seconds in zip(targets, row):
                            if seconds is None:
                                self.fallbacks += 1
                                out[i][j] = haversine_km(points[i], points[j]) * self.fallback.detour / self.fallback.speed_kmh * 60.0
                            else:
                                out[i][j] = float(seconds) / 60.0
        finally:
            if own:
                await client.aclose()
        return out

    async def _block(self, client: httpx.AsyncClient, points: Sequence[Point], sources: list[int], targets: list[int]) -> list[list[float | None]]:
        # One request per block: the union of its sources and targets, with indices into that union.
        union = sorted(set(sources) | set(targets))
        at = {p: k for k, p in enumerate(union)}
        coordinates = ";".join(f"{points[p][1]:.6f},{points[p][0]:.6f}" for p in union)  # OSRM wants lon,lat
        url = f"{self.base_url.rstrip('/')}/table/v1/{self.profile}/{coordinates}"
        params = {
            "sources": ";".join(str(at[p]) for p in sources),
            "destinations": ";".join(str(at[p]) for p in targets),
            "annotations": "duration",
        }
        response = await client.get(url, params=params)
        if response.status_code != 200:
            raise OsrmTableError(f"OSRM table answered {response.status_code}: {response.text[:200]}")
        body = response.json()
        if body.get("code") != "Ok":
            raise OsrmTableError(f"OSRM table error {body.get('code')}: {body.get('message', '')}")
        durations = body.get("durations")
        if not isinstance(durations, list) or len(durations) != len(sources) or any(len(row) != len(targets) for row in durations):
            raise OsrmTableError("OSRM table answer has the wrong shape")
        return durations
