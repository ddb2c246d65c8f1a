"""Carbon intensity of electricity grids, from carbonmeter's embedded tables.

`lookup()` resolves a location as a tracker does (cloud region over region over country; the
world average when nothing is given) and never goes online.

Example:
    >>> from carbonmeter.intensity import lookup
    >>> grid = lookup(cloud_provider="gcp", cloud_region="europe-west1")
    >>> grid.zone, grid.method
    ('gcp:europe-west1', 'table')
    >>> lookup(region="Québec").zone
    'CA-QC'
"""

from carbonmeter._core import Intensity
from carbonmeter._core import lookup_intensity as lookup

__all__ = ["Intensity", "lookup"]
