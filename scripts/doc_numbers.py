"""The numbers the READMEs quote about vitviz-shapes, written from the data they come from.

    python scripts/doc_numbers.py            # rewrite the <!-- shapes-numbers:start/end --> blocks
    python scripts/doc_numbers.py --check    # exit 1 when a block differs from the data

README.md and README.zh-CN.md each hold one generated sentence about the bundled model, from
``vitviz/assets/shapes_vit.json`` (the metrics ``scripts/train_shapes.py`` measured and the model card's results
section shows). ``tests/unit/test_doc_numbers.py`` checks that the blocks are up to date and that no other
percentage in the READMEs, or in the model card's results and evaluation sections outside their generated blocks,
is one the data do not hold.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts._markers import replace_between  # noqa: E402

CONFIG = ROOT / "vitviz" / "assets" / "shapes_vit.json"
START, END = "<!-- shapes-numbers:start -->", "<!-- shapes-numbers:end -->"
READMES = {"en": ROOT / "README.md", "zh": ROOT / "README.zh-CN.md"}
TEMPLATES = {
    "en": ("{accuracy} % accuracy on held-out images in many drawing styles, hand-drawn and photographed sheets "
           "included, {held_out} % on two styles it never saw; its maps point at the object at least {pointing} % "
           "of the time in every style"),
    "zh": ("在多种绘制风格的留出图像上准确率 {accuracy} %（包括手绘和拍照的图纸），在两种从未见过的风格上为 "
           "{held_out} %；在每种风格下，它的图至少有 {pointing} % 的时候指向物体"),
}


def facts(config: dict) -> dict[str, str]:
    """The quoted numbers: accuracy on the training mix at the native patch size (rounded), the held-out
    families' accuracies (rounded, as a range), and the lowest pointing game of any family and map (rounded
    down, since the text says "at least")."""
    metrics = config["metrics"]
    native = str(config["native_patch_size"])
    held = sorted(round(100 * f["accuracy"][native]) for f in metrics["families"].values() if f.get("held_out"))
    pointing = min(m["pointing"] for f in metrics["families"].values() for m in f["localisation"][native].values())
    return {"accuracy": str(round(100 * metrics["accuracy"][native])),
            "held_out": f"{held[0]}–{held[-1]}" if held[0] != held[-1] else str(held[0]),
            "pointing": str(math.floor(100 * pointing + 1e-9))}


def render(config: dict, lang: str) -> str:
    return TEMPLATES[lang].format(**facts(config))


def blocks(text: str) -> list[str]:
    """The contents of every generated block in ``text``."""
    return re.findall(re.escape(START) + r"(.*?)" + re.escape(END), text, flags=re.S)


def update(text: str, sentence: str) -> str:
    return replace_between(text, START, END, sentence)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that every block is up to date")
    args = parser.parse_args(argv)
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    stale = []
    for lang, path in READMES.items():
        text = path.read_text(encoding="utf-8")
        new = update(text, render(config, lang))
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"stale numbers in {', '.join(stale)}: run python scripts/doc_numbers.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
