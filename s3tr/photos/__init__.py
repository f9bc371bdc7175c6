"""photos stage: defensive reading of geotagged JPEG photos and their named checks.

:func:`read_photo` turns uploaded bytes into a :class:`PhotoInfo` (or refuses them with
:class:`PhotoRejected`); :func:`check_photo` judges that photo against its request (parcel,
target point, time window, heading, earlier photos) as a list of :class:`CheckResult`.
Pure functions: no database, no web code.
"""

from __future__ import annotations

from s3tr.photos.checks import (
    CHECK_NAMES,
    CheckResult,
    PhotoCheckInputError,
    angular_difference_deg,
    check_photo,
    grid_bearing_deg,
)
from s3tr.photos.exif import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    PhotoInfo,
    PhotoRejected,
    decimal_to_dms,
    dms_to_decimal,
    phash_distance,
    read_photo,
    sniff_type,
)

__all__ = [
    "CHECK_NAMES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "CheckResult",
    "PhotoCheckInputError",
    "PhotoInfo",
    "PhotoRejected",
    "angular_difference_deg",
    "check_photo",
    "decimal_to_dms",
    "dms_to_decimal",
    "grid_bearing_deg",
    "phash_distance",
    "read_photo",
    "sniff_type",
]
