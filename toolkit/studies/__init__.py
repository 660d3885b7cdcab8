"""The design of a comparison, how many seeds it needs: `--seeds auto` (rounds of seeds at planned looks, only for
the rows still undecided) and `toolkit noise` (how noisy a proxy is, and what a question costs on it). Both run
sweeps and read their verdicts."""
