"""Fine-tuning and evaluation scripts that write the artifacts in ``models/``."""
