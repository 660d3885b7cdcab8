"""Reports: comparison tables, footnotes and plots, from the records alone (toolkit/records); nothing here trains,
and nothing here reads the sweep or the registry to pair rows. The statistics are toolkit/stats.py."""
