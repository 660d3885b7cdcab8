"""Reports: statistics, comparison tables and plots, from the records a sweep wrote; nothing here trains."""
