"""The 12 script labels of E-SyncVidStory (synchronized-video-storytelling.txt, appendix A.4)."""

from __future__ import annotations

SCRIPT_LABELS: tuple[str, ...] = (
    "social_proof",  # social proof / influence
    "sore_point",
    "call_to_action",
    "design_of_appearance",
    "ingredient_material_texture",
    "product_trial",
    "product_effect",
    "product_security",
    "specific_characteristics",
    "authoritative_certificate",
    "production_process",
    "others",
)


def word_budget(duration_s: float) -> tuple[int, int]:
    """Narration word budget of a clip of ``duration_s`` seconds: ``[5t - 3, 5t + 3]`` (t in s)."""
    t = max(0.0, duration_s)
    return max(0, round(5 * t - 3)), round(5 * t + 3)
