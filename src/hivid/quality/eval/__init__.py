"""The evaluation-inputs gate: ``tables`` reads ``gt.json`` and ``predictions.json``, ``suites``
checks their events."""
