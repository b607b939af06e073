"""hivid.annotate

The annotate stage (paper §3.1): ASR sentences with word times (``asr``, models resolved by
``models``), 1 fps frame descriptions with shot changes and similarity reuse (``frames``), a
deterministic coarse TCoT + chapters (``chapters``), and the per-video/batch driver (``pipeline``).
"""
