"""Sweeps: one plan (names -> rows, each with its reference and what its records will mean) -> its jobs for the
seeds asked, or --seeds auto's looks -> checks -> runs (in this process or on Ray) -> records (run folders and the
results table, toolkit/records)."""
