"""The doors into the core from outside Python: the command line (``python -m
hematovision``), the HTTP API, and the benchmark. They only parse, call and print."""
