"""The annotation-batch gate (``validate`` stage): ``tables`` flattens the manifest and the
annotation records, ``suites`` checks them (manifest, videos, ASR segments, frames, TCoT,
chapters)."""
