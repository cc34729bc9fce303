"""Persistence, one module per aggregate: ``db`` (engine, column types, write transactions), ``users``
(users and their deposit addresses), ``cases`` (cases and their timeline), ``signed_txs``, ``scan_cursors``,
``ledger`` (credits and fees), and ``schema`` (creates every table)."""
