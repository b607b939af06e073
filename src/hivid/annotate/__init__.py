"""hivid.annotate

The annotate stage (paper §3.1), one module per part:

- ``config``: the params section (``AnnotateConfig``) and the per-sub-step configs it maps onto;
- ``keys``: per-sub-step cache keys and the record's ``cache_key``;
- ``steps``: the four sub-steps (ASR, frames, correction, chapters) and ``annotate_video``; the
  record schema;
- ``resources``: the models of one process, built lazily; ``executors``: in-process, process pool,
  Dask, Ray; ``batch``: ``annotate_batch`` over a manifest, with quarantine;
- the sub-step libraries: ``asr`` (models resolved by ``model_resolve``), ``frames``/``vlm``,
  ``correction``/``llm``/``prompts``, ``chapters``/``storyline``/``embeddings``; ``accuracy``
  scores records against ground truth.
"""
