from geo.coords import LatLon, haversine_m
from geo.districts import District, DistrictIndex
from geo.fleet import FleetIndex
from geo.travel import StraightLineTravel, TravelModel

__all__ = [
    "District",
    "DistrictIndex",
    "FleetIndex",
    "LatLon",
    "StraightLineTravel",
    "TravelModel",
    "haversine_m",
]
