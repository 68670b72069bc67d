"""NetVLAD's ``dbStruct`` ``.mat`` files (Pittsburgh 30k/250k, Tokyo 24/7), read with scipy.

A file holds one MATLAB struct ``dbStruct`` whose fields are read **by name** (some variants
carry an extra leading ``dataset`` field that shifts every position; FORMATS.md 2.3):

* ``whichSet``: the split, ``train``/``val``/``test`` (text).
* ``dbImageFns``, ``qImageFns``: N×1 cell arrays of image names (database names relative to
  the dataset root, query names relative to its query folder).
* ``utmDb``, ``utmQ``: **2×N** arrays, row 0 easting and row 1 northing, metres.
* ``numImages``, ``numQueries``: the list lengths, checked against the lists.
* ``posDistThr`` (metres), ``posDistSqThr`` and ``nonTrivPosDistSqThr`` (square metres): the
  ground-truth radius and NetVLAD's training radii, kept as found.

:func:`load_dbstruct` raises :class:`MatError` (one line, the whole file is unusable) for a file
scipy cannot read, a missing ``dbStruct`` or field, a UTM array not 2×N, or a count that
disagrees with its list; a name that is not text becomes ``None`` in its list (the reader
rejects that row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgdata.errors import UsageError

THRESHOLD_FIELDS = ("posDistThr", "posDistSqThr", "nonTrivPosDistSqThr")
"""The radii a dbStruct may hold: metres, square metres, square metres."""


class MatError(Exception):
    """A ``.mat`` file that cannot be used at all; the message says why (one line)."""


@dataclass
class DbStruct:
    """One ``dbStruct``, fields as read (see the module docstring for units)."""

    which_set: str | None
    db_names: list[str | None]
    utm_db: np.ndarray
    """(N, 2) float64: easting, northing in metres (the file's 2×N transposed)."""
    q_names: list[str | None]
    utm_q: np.ndarray
    """(Nq, 2) float64: easting, northing in metres."""
    thresholds: dict[str, float | None] = field(default_factory=dict)
    """:data:`THRESHOLD_FIELDS` -> value, None where the file lacks it."""
    field_names: tuple[str, ...] = ()
    """Every field of the struct, in file order (extra ones such as ``dataset`` included)."""


def loadmat(path: Path) -> dict[str, Any]:
    """``scipy.io.loadmat(path)``; UsageError when scipy is missing, MatError when unreadable."""
    try:
        import scipy.io
    except ImportError as e:
        raise UsageError(f"reading {path.name} needs scipy: pip install 'vgdata[datasets]'") from e
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise MatError(f"MATLAB v7.3 (HDF5) file, not readable by scipy.io.loadmat: {e}") from e
    except Exception as e:  # a parser fed a damaged file raises anything (MatReadError, zlib.error...)
        raise MatError(f"not a readable .mat file: {type(e).__name__}: {e}") from e


def load_dbstruct(path: Path) -> DbStruct:
    """The ``dbStruct`` of ``path``; MatError when the file cannot be used (module docstring)."""
    mat = loadmat(path)
    if "dbStruct" not in mat:
        raise MatError(f"no dbStruct variable (has {', '.join(k for k in mat if not k.startswith('__')) or 'none'})")
    s = mat["dbStruct"]
    names = tuple(s.dtype.names or ())
    missing = [f for f in ("dbImageFns", "utmDb", "qImageFns", "utmQ") if f not in names]
    if missing:
        raise MatError(f"dbStruct has no field(s) {', '.join(missing)} (has {', '.join(names) or 'none'})")
    rec = s.reshape(-1)[0]

    def get(name: str) -> Any:
        return rec[name] if name in names else None

    db_names, q_names = _names(get("dbImageFns")), _names(get("qImageFns"))
    utm_db, utm_q = _utm(get("utmDb"), "utmDb"), _utm(get("utmQ"), "utmQ")
    for label, fns, utm, count_field in (
        ("dbImageFns", db_names, utm_db, "numImages"),
        ("qImageFns", q_names, utm_q, "numQueries"),
    ):
        if len(utm) != len(fns):
            raise MatError(f"{label} has {len(fns)} names but {'utmDb' if label[0] == 'd' else 'utmQ'} {len(utm)}")
        count = _scalar(get(count_field))
        if count_field in names and count != len(fns):
            raise MatError(f"{count_field} is {count} but {label} has {len(fns)} names")
    return DbStruct(
        which_set=_text(get("whichSet")),
        db_names=db_names,
        utm_db=utm_db,
        q_names=q_names,
        utm_q=utm_q,
        thresholds={f: _scalar(get(f)) for f in THRESHOLD_FIELDS},
        field_names=names,
    )


def _text(value: Any) -> str | None:
    """A MATLAB char array (or a cell holding one) as text; None when it is not text."""
    while isinstance(value, np.ndarray):
        if value.dtype.kind == "U":
            return "".join(value.ravel().tolist()) if value.size else ""
        if value.dtype.kind != "O" or value.size != 1:
            return None
        value = value.ravel()[0]
    return value if isinstance(value, str) else None


def _names(cell: Any) -> list[str | None]:
    """An N×1 (or 1×N) cell array of names; a char matrix (one name per row) is accepted too."""
    arr = np.asarray(cell)
    if arr.dtype.kind == "U":
        return [str(x).rstrip() for x in arr.reshape(-1)]  # scipy reads a char matrix as one string per row
    if arr.dtype.kind != "O":
        raise MatError(f"image names are a {arr.dtype} array, not a cell array of text")
    return [_text(x) for x in arr.reshape(-1)]


def _utm(value: Any, label: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[0] != 2 or arr.dtype.kind not in "iuf":
        raise MatError(f"{label} is a {arr.dtype} array of shape {arr.shape}, not 2xN numbers (easting; northing)")
    return arr.astype(np.float64).T.copy()


def _scalar(value: Any) -> float | None:
    arr = np.asarray(value) if value is not None else None
    if arr is None or arr.size != 1 or arr.dtype.kind not in "iuf":
        return None
    return float(arr.reshape(-1)[0])


RADII = {
    "posDistThr": ("pos_dist_thr", "metres"),
    "posDistSqThr": ("pos_dist_sq_thr", "square metres"),
    "nonTrivPosDistSqThr": ("non_triv_pos_dist_sq_thr", "square metres"),
}
"""The dbStruct's ground-truth radii and the attribute column suffix each is kept under."""


def radius_columns(prefix: str) -> dict[str, str]:
    """dbStruct field -> attribute column (``<prefix>_pos_dist_thr`` ...) for a dataset's own columns."""
    return {field_name: f"{prefix}_{suffix}" for field_name, (suffix, _) in RADII.items()}


def radius_attributes(prefix: str) -> list[tuple[str, Any]]:
    """The float64 attribute columns holding the radii (query rows), named by :func:`radius_columns`."""
    import pyarrow as pa

    return [(column, pa.float64()) for column in radius_columns(prefix).values()]
