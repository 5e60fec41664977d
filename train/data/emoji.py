"""Emoji datasets rendered from Debian's Noto Color Emoji font, labelled by Unicode's emoji-test.txt.

Recipe (see docs/data.md): every ``fully-qualified`` sequence of emoji-test.txt is drawn with
Pillow's RAQM layout at 109 ppem (the only size the CBDT font has) on a transparent canvas,
composited on white, cropped to its alpha box, padded to a square and LANCZOS-resized.  Sequences
that do not ligate into one glyph (wider than one glyph: font and data out of step) are skipped and
counted; identical renders are de-duplicated (first occurrence kept, in file order).

Subsets:
  portrait  Smileys & Emotion ``face-*`` + People & Body ``person``, ``person-gesture``, ``person-role``,
            ``person-fantasy`` (skin tones kept): the FFHQ stand-in, unlabelled.
  groups    all 9 groups, skin-tone variants dropped, labelled by group: the ImageNet stand-in.
  all       every unique render, labelled by group.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from zoo.errors import ZooError

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT_SIZE = 109  # the only pixel size FreeType accepts for this bitmap (CBDT) font
MAX_GLYPH_WIDTH = 140  # one glyph is 136 px wide at 109 ppem; wider = the sequence did not ligate
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
PORTRAIT_SUBGROUPS = frozenset({"person", "person-gesture", "person-role", "person-fantasy"})
SUBSETS = ("portrait", "groups", "all")


@dataclass(frozen=True)
class Emoji:
    codepoints: tuple[int, ...]
    name: str
    group: str
    subgroup: str

    @property
    def text(self) -> str:
        return "".join(map(chr, self.codepoints))

    @property
    def hex(self) -> str:
        return " ".join(f"{c:04X}" for c in self.codepoints)

    @property
    def has_skin_tone(self) -> bool:
        return any(c in SKIN_TONES for c in self.codepoints)


def parse_emoji_test(path: str | os.PathLike = EMOJI_TEST) -> list[Emoji]:
    """Fully-qualified emoji of emoji-test.txt, in file order, with their group and subgroup."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path} not found: install the Debian package 'unicode-data' (apt-get install unicode-data)")
    out, group, subgroup = [], "", ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#") and ";" in line:
            cps, rest = line.split(";", 1)
            status, _, comment = rest.partition("#")
            if status.strip() != "fully-qualified":
                continue
            # comment: "<emoji> E<version> <name>"
            parts = comment.strip().split(" ", 2)
            name = parts[2] if len(parts) == 3 else comment.strip()
            out.append(Emoji(tuple(int(c, 16) for c in cps.split()), name, group, subgroup))
    if not out:
        raise ZooError(f"{path}: no fully-qualified emoji found (not an emoji-test.txt?)")
    return out


def group_names(emoji: list[Emoji]) -> list[str]:
    """The groups in file order (the class labels of the 'groups' and 'all' subsets)."""
    return list(dict.fromkeys(e.group for e in emoji))


def select(emoji: list[Emoji], subset: str) -> list[Emoji]:
    if subset == "portrait":
        return [e for e in emoji if (e.group == "Smileys & Emotion" and e.subgroup.startswith("face-"))
                or (e.group == "People & Body" and e.subgroup in PORTRAIT_SUBGROUPS)]
    if subset == "groups":
        return [e for e in emoji if not e.has_skin_tone]
    if subset == "all":
        return list(emoji)
    raise ZooError(f"unknown emoji subset {subset!r}; choose one of {', '.join(SUBSETS)}")


def check_raqm() -> None:
    """Raise ZooError unless Pillow has the RAQM layout engine (needed to ligate emoji sequences)."""
    from PIL import features

    if not features.check("raqm"):
        raise ZooError(
            "Pillow has no RAQM text layout (libraqm, plus libfribidi from the system): emoji ZWJ/skin-tone/flag "
            "sequences would not ligate and only ~1,400 of ~3,650 emoji would render correctly. Install "
            "'libraqm0' / 'libfribidi0' (apt-get) or a Pillow wheel with RAQM; refusing to build a broken set."
        )


class Renderer:
    """Renders one emoji string to a square uint8 HWC RGB array (white background)."""

    def __init__(self, resolution: int, font_path: str | os.PathLike = FONT):
        from PIL import ImageFont

        check_raqm()
        font_path = Path(font_path)
        if not font_path.is_file():
            raise ZooError(f"{font_path} not found: install the Debian package 'fonts-noto-color-emoji'")
        self.resolution = resolution
        self.font = ImageFont.truetype(str(font_path), FONT_SIZE, layout_engine=ImageFont.Layout.RAQM)

    def render(self, text: str) -> Optional[np.ndarray]:
        """The emoji as [res, res, 3] uint8, or None when the sequence does not form one glyph."""
        from PIL import Image, ImageDraw

        canvas = Image.new("RGBA", (4 * FONT_SIZE, 2 * FONT_SIZE), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((FONT_SIZE // 2, FONT_SIZE // 2), text, font=self.font, embedded_color=True)
        box = canvas.getchannel("A").getbbox()
        if box is None or box[2] - box[0] > MAX_GLYPH_WIDTH:
            return None
        glyph = canvas.crop(box)
        side = max(glyph.size)
        square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
        offset = ((side - glyph.size[0]) // 2, (side - glyph.size[1]) // 2)
        square.alpha_composite(glyph, offset)
        rgb = square.convert("RGB").resize((self.resolution, self.resolution), Image.Resampling.LANCZOS)
        return np.asarray(rgb, dtype=np.uint8)


def _package_version(name: str) -> Optional[str]:
    """Debian package version from dpkg's status file (provenance only; None when unknown)."""
    status = Path("/var/lib/dpkg/status")
    if not status.is_file():
        return None
    block_pkg = None
    for line in status.read_text(errors="replace").splitlines():
        if line.startswith("Package: "):
            block_pkg = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and block_pkg == name:
            return line.split(": ", 1)[1]
    return None


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_emoji(resolution: int = 64, subset: str = "portrait", *, font: str | os.PathLike = FONT,
                emoji_test: str | os.PathLike = EMOJI_TEST, limit: Optional[int] = None, progress: bool = True):
    """Render an emoji dataset in memory. Returns ``(ImageDataset, source, build)`` for ``save_dataset``.

    ``limit`` keeps only the first N emoji of the subset (for tests and quick looks).
    """
    import warnings

    from tqdm.auto import tqdm

    from zoo.train.data.dataset import ImageDataset

    if subset not in SUBSETS:
        raise ZooError(f"unknown emoji subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    if not 8 <= resolution <= 1024:
        raise ZooError(f"--res must be in [8, 1024], got {resolution}")
    every = parse_emoji_test(emoji_test)
    classes = group_names(every)
    chosen = select(every, subset)[:limit]
    renderer = Renderer(resolution, font)
    images, labels, items, seen = [], [], [], set()
    not_ligated, duplicates = [], 0
    for e in tqdm(chosen, desc=f"render emoji {subset} {resolution}px", unit="img", disable=not progress,
                  mininterval=1.0):
        img = renderer.render(e.text)
        if img is None:
            not_ligated.append(e.hex)
            continue
        digest = hashlib.sha256(img.tobytes()).digest()
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        images.append(img)
        labels.append(classes.index(e.group))
        items.append({"codepoints": e.hex, "name": e.name, "group": e.group, "subgroup": e.subgroup})
    if not_ligated:
        warnings.warn(f"{len(not_ligated)} emoji sequences did not render as one glyph and were skipped "
                      f"(font and emoji-test.txt versions differ?): {', '.join(not_ligated[:5])}...", stacklevel=2)
    if len(not_ligated) > 0.05 * max(len(chosen), 1):
        raise ZooError(f"{len(not_ligated)} of {len(chosen)} emoji did not ligate: the text layout is broken "
                       f"(RAQM/HarfBuzz) or the font does not match emoji-test.txt; refusing to build")
    if not images:
        raise ZooError("no emoji rendered")
    arr = np.stack(images).transpose(0, 3, 1, 2).copy()  # NHWC -> NCHW
    labelled = subset != "portrait"
    name = f"emoji-{subset}-{resolution}"
    ds = ImageDataset(arr, np.asarray(labels, dtype=np.int64) if labelled else None,
                      classes if labelled else None, name, items=items)
    source = {
        "kind": "emoji", "font": str(font), "font_sha256": _sha256_file(Path(font)),
        "font_package": f"fonts-noto-color-emoji {_package_version('fonts-noto-color-emoji')}",
        "emoji_test": str(emoji_test), "emoji_test_sha256": _sha256_file(Path(emoji_test)),
        "emoji_test_package": f"unicode-data {_package_version('unicode-data')}",
        "licence": "Noto Color Emoji: font OFL-1.1, artwork Apache-2.0; emoji-test.txt: Unicode licence",
    }
    build = {"builder": "emoji", "subset": subset, "resolution": resolution, "limit": limit,
             "candidates": len(chosen), "not_ligated": len(not_ligated), "duplicates_removed": duplicates,
             "font_size": FONT_SIZE, "resample": "LANCZOS", "background": "white"}
    return ds, source, build
