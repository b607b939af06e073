"""Data quality: Great Expectations suites and gates, and the cross-stage quarantine report.

One sub-package per gate, each with its ``tables`` (typed pandas tables flattened from untrusted
JSON) and its ``suites`` (the versioned GX suites over them) side by side: ``annotations`` (the
``validate`` stage: manifest and annotation records), ``splits`` (dataset splits) and ``eval``
(evaluation inputs). Shared parts: ``config`` (``QualityConfig``), ``columns`` (value coercion,
fixed-dtype frames), ``checks`` (``Check``, ``Suite``, wording, the interval checks every gate
uses). ``gate`` runs the suites (per-video quarantine, batch failures, results JSON, Data Docs);
``quarantine`` merges every stage's quarantine rows into one report. ``tables`` and ``suites``
re-export every gate's names under their old paths.
"""
