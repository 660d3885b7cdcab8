"""Sweeps: plan (names -> jobs, each with what its row will mean) -> check -> run the jobs (in this process or on
Ray) -> records (run folders and the results table, toolkit/records)."""
