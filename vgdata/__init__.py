"""vgdata: build SF-XL-style visual geo-localization catalogs in DuckDB/Parquet."""

from vgdata.errors import UsageError, VgdataError

__version__ = "0.1.0"

__all__ = ["UsageError", "VgdataError", "__version__"]
