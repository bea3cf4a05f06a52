"""Jurisdictions and grids: codes, boundaries, the generated levels and point lookup.

``codes`` checks the unified grid code, ``coords`` converts GCJ-02/CGCS2000 to WGS84,
``dataset`` builds the city (``load_city()``) and ``locate`` finds the grid of a point
(``locator().locate(lon, lat)``).
"""
