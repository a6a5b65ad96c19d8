"""The warehouse: immutable content-addressed Parquet artefacts, their lineage, the call ledger,
and the DuckDB views over them. DuckDB only reads; Parquet holds every copy."""

from specstress.warehouse.store import Warehouse

__all__ = ["Warehouse"]
