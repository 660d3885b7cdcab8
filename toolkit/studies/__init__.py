"""Studies of a comparison: `toolkit noise` (how noisy a proxy is, and what a question costs on it), `toolkit
fidelity` (does a proxy tell the truth about the full data) and proxies by rule (built once, which one to use).
Each runs sweeps and reads their verdicts."""
