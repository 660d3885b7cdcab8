"""Benchmarks that print tables: the data path against the no-loading limit (`toolkit bench data`)."""
