"""The demo corpus's product pool and script: products, chapter labels, narration sentences,
titles and summaries (content tables for ``hivid.data.demo``; no I/O).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Product pool
# --------------------------------------------------------------------------------------------

_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (206, 42, 48),
    "blue": (40, 92, 200),
    "green": (46, 150, 74),
    "black": (34, 34, 38),
    "white": (236, 236, 232),
    "pink": (236, 120, 170),
    "yellow": (240, 200, 40),
    "purple": (128, 64, 170),
    "orange": (240, 128, 30),
    "teal": (30, 150, 150),
}

# Spoken form of units so the narration (and hence the ASR transcript) uses words.
_UNITS_SPOKEN = {"ml": "milliliters", "L": "liters", "mm": "millimeters", "h": "hours"}


@dataclass(frozen=True)
class _Template:
    category: str
    names: tuple[str, ...]
    shape: str
    colours: tuple[str, ...]
    attributes: tuple[tuple[str, tuple[str, ...]], ...]
    price_range: tuple[int, int]


_TEMPLATES: tuple[_Template, ...] = (
    _Template(
        "shampoo",
        ("Herbal Shampoo", "Repair Shampoo", "Silk Shampoo"),
        "bottle",
        ("red", "green", "purple", "teal"),
        (("volume", ("250 ml", "500 ml", "750 ml")), ("scent", ("lavender", "mint", "coconut"))),
        (9, 29),
    ),
    _Template(
        "face cream",
        ("Hydra Cream", "Night Cream", "Glow Cream"),
        "jar",
        ("white", "pink", "blue"),
        (
            ("volume", ("30 ml", "50 ml")),
            ("ingredient", ("aloe vera", "shea butter", "hyaluronic acid")),
        ),
        (15, 59),
    ),
    _Template(
        "water bottle",
        ("Trail Bottle", "Steel Bottle", "Sport Bottle"),
        "flask",
        ("blue", "black", "green", "orange"),
        (("capacity", ("600 ml", "750 ml", "1 L")), ("material", ("stainless steel", "glass"))),
        (14, 39),
    ),
    _Template(
        "coffee mug",
        ("Travel Mug", "Morning Mug", "Cafe Mug"),
        "mug",
        ("white", "yellow", "teal", "red"),
        (("capacity", ("350 ml", "450 ml")), ("material", ("ceramic", "bamboo fiber"))),
        (12, 29),
    ),
    _Template(
        "backpack",
        ("City Backpack", "Hiking Pack", "Laptop Backpack"),
        "bag",
        ("black", "green", "blue", "orange"),
        (("capacity", ("20 L", "28 L", "35 L")), ("material", ("nylon", "canvas", "leather"))),
        (39, 129),
    ),
    _Template(
        "wireless earbuds",
        ("Air Buds", "Sport Earbuds", "Studio Buds"),
        "round",
        ("white", "black", "blue"),
        (("battery", ("24 h", "30 h", "36 h")), ("feature", ("noise cancelling", "water proof"))),
        (29, 149),
    ),
    _Template(
        "yoga mat",
        ("Flow Mat", "Grip Mat", "Studio Mat"),
        "roll",
        ("purple", "teal", "pink", "green"),
        (("thickness", ("4 mm", "6 mm", "8 mm")), ("material", ("natural rubber", "cork"))),
        (19, 79),
    ),
    _Template(
        "bluetooth speaker",
        ("Boom Box", "Pocket Speaker", "Party Speaker"),
        "box",
        ("black", "red", "blue", "yellow"),
        (("battery", ("12 h", "20 h")), ("feature", ("deep bass", "water proof"))),
        (25, 99),
    ),
)

_BRANDS: tuple[str, ...] = (
    "Aquavita",
    "Lumora",
    "Nordvik",
    "Veltra",
    "Solenne",
    "Kairo",
    "Brisa",
    "Zenthe",
    "Orvana",
    "Tessel",
    "Calyx",
    "Mirabelle",
)


@dataclass(frozen=True)
class Product:
    """One advertised product (what metadata/<id>.json describes)."""

    brand: str
    category: str
    name: str
    shape: str
    colour: str
    attributes: dict[str, str]
    price: float

    @property
    def title(self) -> str:
        first = next(iter(self.attributes.items()))[1] if self.attributes else ""
        return f"{self.brand} {self.name} {first}".strip()

    @property
    def price_text(self) -> str:
        return f"${self.price:.2f}"


def _spoken(value: str) -> str:
    """'500 ml' -> '500 milliliters' (numbers stay digits; espeak reads them)."""
    words = value.split()
    return " ".join(_UNITS_SPOKEN.get(w, w) for w in words)


def make_product(rng: random.Random) -> Product:
    """Draw one product from the pool with ``rng``."""
    tpl = rng.choice(_TEMPLATES)
    colour = rng.choice(tpl.colours)
    attrs = {key: rng.choice(values) for key, values in tpl.attributes}
    attrs["color"] = colour
    return Product(
        brand=rng.choice(_BRANDS),
        category=tpl.category,
        name=rng.choice(tpl.names),
        shape=tpl.shape,
        colour=colour,
        attributes=attrs,
        price=float(rng.randint(*tpl.price_range)),
    )


# --------------------------------------------------------------------------------------------
# Script: chapter labels, narration, titles, summaries
# --------------------------------------------------------------------------------------------

_HOOK_LABELS = ("sore_point", "social_proof")
# Middle chapters appear in this narrative order.
_MIDDLE_LABELS = (
    "design_of_appearance",
    "ingredient_material_texture",
    "specific_characteristics",
    "product_trial",
    "product_effect",
    "product_security",
    "authoritative_certificate",
    "production_process",
)

_SENTENCES: dict[str, tuple[str, ...]] = {
    "sore_point": (
        "Tired of a {category} that lets you down after one week?",
        "Still looking for a {category} that actually works?",
        "Most {category} products look great online and disappoint at home.",
        "Meet the {brand} {name}, the fix I was waiting for.",
    ),
    "social_proof": (
        "Over ten thousand buyers gave the {brand} {name} five stars.",
        "This {category} is the one my friends keep asking me about.",
        "The {brand} {name} sold out three times this month.",
    ),
    "design_of_appearance": (
        "Look at this {colour} finish on the {brand} {name}.",
        "The {name} comes in a clean {colour} design that looks great anywhere.",
        "Its compact shape fits easily in your hand or your bag.",
    ),
    "ingredient_material_texture": (
        "{attr_sentence}",
        "You can feel the quality of the {brand} {name} the moment you touch it.",
        "Nothing cheap here, just honest materials from {brand}.",
    ),
    "specific_characteristics": (
        "{attr_sentence}",
        "The {colour} {name} is light, simple and easy to clean.",
        "Everything about this {category} is made for daily use.",
    ),
    "product_trial": (
        "Let me try the {brand} {name} right now.",
        "I have been using this {category} every day this week.",
        "Watch what happens when I use the {name} for the first time.",
    ),
    "product_effect": (
        "After one week with the {name} the difference is easy to see.",
        "It does exactly what {brand} promised.",
        "The result feels clean, fresh and comfortable.",
    ),
    "product_security": (
        "The {brand} {name} is tested for safety and free from harsh chemicals.",
        "Every {name} comes with a two year warranty.",
        "It is safe for the whole family.",
    ),
    "authoritative_certificate": (
        "The {brand} {name} is certified by an independent lab.",
        "Experts gave {brand} a quality award this year.",
        "Every batch of this {category} passes strict quality tests.",
    ),
    "production_process": (
        "Every {name} is made in small batches and checked by hand.",
        "{brand} builds this {category} in its own factory.",
        "Each piece is inspected twice before it leaves the line.",
    ),
    "call_to_action": (
        "Get the {brand} {name} today for only {price_spoken}.",
        "Tap the link below and order your {colour} {name} now.",
        "At {price_spoken} this {category} is a deal you should not miss.",
    ),
}

_ATTR_SENTENCES: dict[str, str] = {
    "volume": "The {name} holds {value}, enough for weeks.",
    "scent": "The {value} scent of the {name} is fresh but never too strong.",
    "ingredient": "The {name} is enriched with {value} for soft skin.",
    "capacity": "With {value} of space, the {name} carries everything you need.",
    "material": "The {brand} {name} is made of {value}, solid and durable.",
    "battery": "The battery of the {name} lasts up to {value} on one charge.",
    "feature": "The {name} is {value}, so it keeps up with your day.",
    "thickness": "At {value} thick, the {name} cushions every move.",
}

_TITLES: dict[str, str] = {
    "sore_point": "Why you need a better {category}",
    "social_proof": "Why buyers love the {name}",
    "design_of_appearance": "The {colour} design of the {name}",
    "ingredient_material_texture": "What the {name} is made of",
    "specific_characteristics": "Key features of the {name}",
    "product_trial": "Trying the {name}",
    "product_effect": "Results with the {name}",
    "product_security": "Safety and warranty",
    "authoritative_certificate": "Certified quality from {brand}",
    "production_process": "How {brand} makes it",
    "call_to_action": "Get the {name} for {price}",
}

_SUMMARIES: dict[str, str] = {
    "sore_point": "The presenter raises a common problem with {category} products and "
    "introduces the {brand} {name}.",
    "social_proof": "The presenter says how popular the {brand} {name} is with buyers.",
    "design_of_appearance": "The presenter shows the {colour} design of the {brand} {name}.",
    "ingredient_material_texture": "The presenter explains what the {brand} {name} is made of.",
    "specific_characteristics": "The presenter lists the key features of the {brand} {name}.",
    "product_trial": "The presenter tries the {brand} {name} on camera.",
    "product_effect": "The presenter describes the results of using the {brand} {name}.",
    "product_security": "The presenter explains that the {brand} {name} is safe and covered "
    "by warranty.",
    "authoritative_certificate": "The presenter mentions the certificates and quality tests "
    "behind the {brand} {name}.",
    "production_process": "The presenter describes how {brand} makes the {name}.",
    "call_to_action": "The presenter asks viewers to buy the {brand} {name} for {price}.",
}


def _fields(product: Product) -> dict[str, str]:
    return {
        "brand": product.brand,
        "name": product.name,
        "category": product.category,
        "colour": product.colour,
        "price": product.price_text,
        "price_spoken": f"{int(product.price)} dollars",
    }


def plan_labels(rng: random.Random, n_chapters: int) -> list[str]:
    """Hook, ``n_chapters - 2`` middle chapters in narrative order, call to action."""
    middle = sorted(rng.sample(_MIDDLE_LABELS, n_chapters - 2), key=_MIDDLE_LABELS.index)
    return [rng.choice(_HOOK_LABELS), *middle, "call_to_action"]


def chapter_sentences(rng: random.Random, product: Product, label: str, k: int) -> list[str]:
    """``k`` distinct narration sentences of a chapter with ``label`` about ``product``."""
    fields = _fields(product)
    attr_keys = [key for key in product.attributes if key in _ATTR_SENTENCES]
    pool = list(_SENTENCES[label])
    picked = rng.sample(pool, min(k, len(pool)))
    out = []
    for template in picked:
        if template == "{attr_sentence}":
            key = rng.choice(attr_keys)
            value = _spoken(product.attributes[key])
            template = _ATTR_SENTENCES[key].replace("{value}", value)
        out.append(template.format(**fields))
    return out
