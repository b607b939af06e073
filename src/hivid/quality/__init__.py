"""Data quality: Great Expectations suites and gates, and the cross-stage quarantine report.

``tables`` flattens manifest and annotation records (and dataset splits, evaluation inputs) into
typed pandas tables; ``suites`` holds the versioned GX suites over them; ``gate`` runs them
(per-video quarantine, batch failures, results JSON, Data Docs); ``quarantine`` merges every
stage's quarantine rows into one report.
"""
