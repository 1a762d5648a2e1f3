"""USD prices by day: the ``prices`` table, a lookup (``PriceBook``), CSV import and a public-source fetch."""

from fundtrail.prices.book import PriceBook, asset_key
from fundtrail.prices.fetch import DEFAULT_URL, fetch_prices
from fundtrail.prices.importer import PriceImportStats, import_csv, import_rows, parse_price_csv

__all__ = ["DEFAULT_URL", "PriceBook", "PriceImportStats", "asset_key", "fetch_prices", "import_csv",
           "import_rows", "parse_price_csv"]
