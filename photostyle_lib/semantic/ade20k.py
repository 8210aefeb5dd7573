"""ADE20K as data: the 150 SceneParsing label names and two tables of merged labels.

The paper segments both images with a model trained on ADE20K's 150-class
SceneParsing benchmark (Zhou et al. [18]) and "merged similar labels such as
'lake' and 'river', as suggested by [Luan et al.]" (section 4). The paper does
not list its merges; its public code does (``category_merge_list`` in
``segment.py`` of Billijk/Deep-Photo-Style-Transfer-PyTorch, the repository
the paper names, branch master). Two tables:

* :data:`AUTHORS_MERGES` -- that list, transcribed id for id, with its one slip
  kept (see the table's comment); the soft-mask pipeline ``"authors"`` of
  :func:`photostyle_lib.semantic.cut.semantic_masks` uses it.
* :data:`DEFAULT_MERGES` -- our own table, one group per kind of region whose
  ADE20K classes the segmenter confuses with each other *and* whose members
  share a photographic style, each with the reason in one line; the pipeline
  ``"merged"`` (and hard masks) use it. It is not the authors' list.

Every ADE20K-150 checkpoint (CSAIL's, OpenMMLab's, NVIDIA's SegFormer) uses
the class order of :data:`ADE20K_LABELS`: channel ``i`` of the model's output
is ``ADE20K_LABELS[i]``, i.e. 1-based ADE20K id ``i + 1`` as written in
``objectInfo150.csv`` and in the authors' code. Names are the first synonym of
each class in ``objectInfo150.csv`` (CSAIL writes ``"building;edifice"``; we
keep ``"building"``), stripped of stray spaces.
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

    Attributes
    ----------
    name
        the merged label's name (may equal one of the members).
    members
        the original label names merged, at least two.
    reason
        one line saying why these belong together.
    """

    name: str
    members: tuple[str, ...]
    reason: str


#: Our merged ADE20K labels (not the authors'). Sky is a single ADE20K class and needs no merge.
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


#: The authors' ``category_merge_list`` as they wrote it: (group name, 1-based
#: ADE20K ids). The first id of a group is the channel that receives the sum;
#: the group names are those of their comments ("Water class", "Tree class", ...).
AUTHORS_MERGE_IDS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("water", (22, 27, 61, 129)),
    ("tree", (18, 10, 73, 5, 33)),
    # Id 48 is "sink"; the authors' comment names this id "skyscraper", which
    # is id 49. Kept as written: sink merges into building and skyscraper
    # stays a label of its own, as in the masks their code made.
    ("building", (26, 2, 48, 1, 80, 85)),
    ("road", (7, 53, 12, 47, 69, 14, 30, 95, 52, 102, 92)),
    ("roof", (87, 6)),
    ("mountain", (17, 35)),
    ("stair", (60, 54, 122)),
    ("chair", (76, 20, 31, 32, 24, 70)),
    ("vehicle", (21, 81, 84, 103)),
)

_AUTHORS_REASONS = {
    "water": "the authors' water class: water, sea, river, lake",
    "tree": "the authors' tree class: plant, grass, palm, tree, fence (their comment omits palm, id 73)",
    "building": "the authors' building class: house, building, wall, hovel, tower -- and sink (id 48), "
                "a slip for skyscraper (id 49)",
    "road": "the authors' road class: paved and bare ground, hills, fields, grandstands and stages",
    "roof": "the authors' roof class: awning, ceiling",
    "mountain": "the authors' mountain class: mountain, rock",
    "stair": "the authors' stair class: stairway, stairs, step",
    "chair": "the authors' chair class: swivel chair, chair, armchair, seat, sofa, bench",
    "vehicle": "the authors' vehicle class: car, bus, truck, van",
}

#: :data:`AUTHORS_MERGE_IDS` as label names; ``members[0]`` is the receiving channel.
AUTHORS_MERGES: tuple[MergeGroup, ...] = tuple(
    MergeGroup(name, tuple(ADE20K_LABELS[i - 1] for i in ids), _AUTHORS_REASONS[name])
    for name, ids in AUTHORS_MERGE_IDS)
