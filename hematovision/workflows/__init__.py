"""What users do with many answers: batches and their review, reports, and teaching.

Builds on ``model`` and ``explanation``; the app pages, the CLI and the API call these.
"""
