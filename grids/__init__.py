"""Jurisdictions and grids: codes, boundaries, the generated levels and point lookup.

``codes`` checks the unified grid code, ``coords`` converts GCJ-02/CGCS2000 to WGS84,
``dataset`` builds the city (``load_city()``) with its micro-grids and dedicated grids
(专属网格, their own 16-digit code space) and ``locate`` finds the grid, micro-grid and
dedicated grids of a point (``locator().locate(lon, lat)``). ``importer`` checks and imports boundary GeoJSON as a
new version of ``versions`` (``locate_at(lon, lat, when_ms)`` resolves with the
boundaries valid then); ``people`` holds each grid's staff and the field
classification used for masking; ``elements`` the six elements per unit.
"""
