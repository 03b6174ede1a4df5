"""ZcProxy benchmark harness: python3 standard library only, driven by bench/run.sh."""
