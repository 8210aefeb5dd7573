"""ADE20K as data: the 150 SceneParsing label names and the table of merged labels.

The paper segments both images with a model trained on ADE20K's 150-class
SceneParsing benchmark (Zhou et al. [18]) and "merged similar labels such as
'lake' and 'river', as suggested by [Luan et al.]" (section 4). The paper does
not list its merges; :data:`DEFAULT_MERGES` is ours, one group per kind of
region whose ADE20K classes the segmenter confuses with each other *and* whose
members share a photographic style, each with the reason in one line.

Every ADE20K-150 checkpoint (CSAIL's, OpenMMLab's, NVIDIA's SegFormer) uses
the class order of :data:`ADE20K_LABELS`: channel ``i`` of the model's output
is ``ADE20K_LABELS[i]``. Names are the first synonym of each class in
``objectInfo150.csv`` (CSAIL writes ``"building;edifice"``; we keep
``"building"``), stripped of stray spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The 150 ADE20K SceneParsing classes, index = model output channel.
ADE20K_LABELS: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock",
    "flag",
)

NUM_ADE20K_LABELS = 150
assert len(ADE20K_LABELS) == NUM_ADE20K_LABELS and len(set(ADE20K_LABELS)) == NUM_ADE20K_LABELS


@dataclass(frozen=True)
class MergeGroup:
    """Labels merged into one: their probabilities are added into channel ``name``.

    Attributes:
        name: the merged label's name (may equal one of the members).
        members: the original label names merged, at least two.
        reason: one line saying why these belong together.
    """

    name: str
    members: tuple[str, ...]
    reason: str


#: Merged ADE20K labels. Sky is a single ADE20K class and needs no merge.
DEFAULT_MERGES: tuple[MergeGroup, ...] = (
    MergeGroup("water", ("water", "sea", "river", "lake", "waterfall", "swimming pool"),
               "water bodies: the paper's lake/river example; the segmenter tells them apart by context, "
               "not by look"),
    MergeGroup("tree", ("tree", "plant", "palm", "flower"),
               "upright vegetation: foliage of trees, shrubs and palms is labelled almost at random"),
    MergeGroup("grass", ("grass", "field"),
               "low vegetation covering the ground: a lawn and a meadow take the same style"),
    MergeGroup("ground", ("earth", "land", "sand", "dirt track"),
               "bare ground: soil, sand and dirt differ in name more than in appearance"),
    MergeGroup("mountain", ("mountain", "hill", "rock"),
               "landforms: distant hills, mountains and cliffs are one backdrop in landscape photos"),
    MergeGroup("building", ("building", "house", "skyscraper", "tower", "hovel"),
               "buildings: facades of every size share materials and the segmenter mixes their classes"),
    MergeGroup("road", ("road", "sidewalk", "path", "runway"),
               "paved ground outdoors: asphalt and paving continue into each other"),
    MergeGroup("floor", ("floor", "rug"),
               "indoor ground: rugs lie on and are often confused with the floor"),
    MergeGroup("stairs", ("stairs", "stairway", "step"),
               "three ADE20K names for steps"),
    MergeGroup("vehicle", ("car", "truck", "van", "bus"),
               "road vehicles: painted metal and glass bodies the segmenter confuses by size"),
    MergeGroup("boat", ("boat", "ship"),
               "vessels on water, split by size only"),
    MergeGroup("screen", ("screen", "crt screen", "monitor", "television receiver", "computer"),
               "displays: glowing screens share their look whatever the device"),
)
