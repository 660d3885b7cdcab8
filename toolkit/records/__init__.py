"""The record stage: what a finished run leaves, written by the sweep and read by the report.

    folders    run folders (RESULTS/runs/<run>/), their status and the liveness of the process running them
    artifacts  what a run folder keeps besides its record: checkpoints, final weights, the environment
    schema     a row of the results table: its columns, what it means (label, role, reference), reading it back
    migrate    tables and run folders written by older versions, brought to today's schema
    table      RESULTS/runs.csv: append under a lock, check, load, rebuild from the run folders
"""
