"""Great-circle distance between coordinates, used for check-in and slot suggestions."""

import math

EARTH_RADIUS_M = 6_371_000.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def map_link(lat: float, lon: float) -> str:
    """A link that opens the point in a map app on any phone."""
    return f"https://maps.google.com/?q={lat:.6f},{lon:.6f}"
