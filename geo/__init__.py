from geo.coords import LatLon, haversine_m
from geo.districts import District, DistrictIndex

__all__ = ["District", "DistrictIndex", "LatLon", "haversine_m"]
