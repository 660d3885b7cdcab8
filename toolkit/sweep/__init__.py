"""Sweeps: plan (names -> jobs paired with references) -> check -> run the jobs (in this process or on Ray) ->
record (run folders, status, the results table in toolkit/sweep/runs.py)."""
