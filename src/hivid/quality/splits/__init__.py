"""The dataset-splits gate: ``tables`` reads ``splits.json``, ``suites`` checks membership and
sizes."""
