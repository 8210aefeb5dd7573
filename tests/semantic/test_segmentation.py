"""Tests of photostyle_lib.semantic.segmenter, .merge, .cut and .cache: the segmenter (tiny random UPerNet), masks, cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle_lib.semantic.ade20k import ADE20K_LABELS, AUTHORS_MERGE_IDS, AUTHORS_MERGES, DEFAULT_MERGES, MergeGroup
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.masks import SemanticMasks, label_map, load_gold_masks
from photostyle_lib.semantic.cache import SegmentationCache
from photostyle_lib.semantic.cut import semantic_masks
from photostyle_lib.semantic.merge import merge_labels
from photostyle_lib.semantic.segmenter import ADE20KSegmenter, architecture_config, scaled_input_size

NAMES = ("sky", "lake", "river", "tree", "road", "person")


@pytest.fixture(scope="module")
def segmenter() -> ADE20KSegmenter:
    """The default architecture, shrunk, with random weights -- requested explicitly."""
    return ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=0, device="cpu", scales=(32, 64))


@pytest.fixture
def image() -> torch.Tensor:
    """(1, 3, 32, 48) float32 in [0, 1], seeded."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 32, 48, generator=g)


def peaked_probs(labels_of_pixels: np.ndarray, num: int, seed: int, sharpness: float = 3.0) -> torch.Tensor:
    """(num, H, W) softmax probabilities whose argmax is ``labels_of_pixels`` (H, W) wherever it is set."""
    rng = np.random.default_rng(seed)
    h, w = labels_of_pixels.shape
    logits = rng.standard_normal((num, h, w))
    logits[labels_of_pixels, np.arange(h)[:, None], np.arange(w)[None, :]] += sharpness
    p = np.exp(logits - logits.max(0))
    return torch.from_numpy(p / p.sum(0))


def bands(h: int, w: int, labels: list[int]) -> np.ndarray:
    """(H, W) int label image of horizontal bands, one per entry of ``labels``."""
    rows = np.array_split(np.arange(h), len(labels))
    out = np.zeros((h, w), dtype=np.int64)
    for r, lab in zip(rows, labels):
        out[r] = lab
    return out


# --------------------------------------------------------------------------- the segmenter


def test_probabilities_shape_sum_and_inputs(segmenter, image):
    p = segmenter.probabilities(image)
    assert p.shape == (150, 32, 48) and p.dtype == torch.float32
    assert float(p.min()) >= 0.0
    torch.testing.assert_close(p.sum(0), torch.ones(32, 48), atol=1e-5, rtol=0)
    # an (H, W, 3) array of the same image gives the same probabilities
    arr = image[0].permute(1, 2, 0).numpy().astype(np.float64)
    torch.testing.assert_close(segmenter.probabilities(arr), p, atol=1e-6, rtol=0)
    assert segmenter.label_names == ADE20K_LABELS


def test_random_weights_are_explicit_seeded_and_recorded(segmenter, image):
    assert segmenter.weights == "random" and segmenter.seed == 0
    assert segmenter.identity.startswith("random:seed=0:")
    same = ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=0, device="cpu", scales=(32, 64))
    other = ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=1, device="cpu", scales=(32, 64))
    assert torch.equal(same.probabilities(image), segmenter.probabilities(image))
    assert not torch.equal(other.probabilities(image), segmenter.probabilities(image))
    assert segmenter.describe()["weights"] == "random"
    with pytest.raises(PhotostyleError, match="only used with checkpoint='random'"):
        ADE20KSegmenter("some/model", config=architecture_config(tiny=True))


def test_missing_weights_error_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PHOTOSTYLE_SEGMENTER", raising=False)
    for ckpt in ("photostyle-tests/no-such-segmenter", None):  # None: the default checkpoint
        with pytest.raises(PhotostyleError) as err:
            ADE20KSegmenter(ckpt, cache_dir=tmp_path / "hf", device="cpu")
        msg = str(err.value)
        assert "not in the Hugging Face cache" in msg and "huggingface-cli download" in msg
        assert "checkpoint=" in msg and "PHOTOSTYLE_SEGMENTER" in msg and "HF_HOME" in msg
    assert "openmmlab/upernet-convnext-small" in msg  # the default checkpoint is named


def test_checkpoint_from_env_and_missing_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("PHOTOSTYLE_SEGMENTER", str(tmp_path / "absent"))
    with pytest.raises(PhotostyleError, match="does not exist"):
        ADE20KSegmenter(device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PhotostyleError, match="save_pretrained"):
        ADE20KSegmenter(empty, device="cpu")


def test_local_directory_checkpoint_loads_like_hub(segmenter, image, tmp_path):
    segmenter.model.save_pretrained(tmp_path / "ckpt")
    loaded = ADE20KSegmenter(tmp_path / "ckpt", device="cpu", scales=(32, 64))
    assert loaded.weights == "pretrained" and loaded.identity.startswith("dir:")
    torch.testing.assert_close(loaded.probabilities(image), segmenter.probabilities(image), atol=1e-6, rtol=0)


def test_hub_id_found_in_the_cache_loads_offline(segmenter, image, monkeypatch, tmp_path):
    """The hub code path with weights already cached: a snapshot laid out as huggingface_hub does."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--photostyle-tests--tiny-upernet"
    segmenter.model.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    loaded = ADE20KSegmenter("photostyle-tests/tiny-upernet", cache_dir=tmp_path / "hub", device="cpu",
                             scales=(32, 64))
    assert loaded.weights == "pretrained"
    assert loaded.identity == f"photostyle-tests/tiny-upernet@{commit}"
    torch.testing.assert_close(loaded.probabilities(image), segmenter.probabilities(image), atol=1e-6, rtol=0)


def test_bad_segmenter_options_and_images(segmenter):
    with pytest.raises(PhotostyleError, match="scales is empty"):
        ADE20KSegmenter("random", config=architecture_config(tiny=True), scales=())
    with pytest.raises(PhotostyleError, match="each scale"):
        ADE20KSegmenter("random", config=architecture_config(tiny=True), scales=(8,))
    with pytest.raises(PhotostyleError, match="device"):
        ADE20KSegmenter("random", config=architecture_config(tiny=True), device="gpu!")
    with pytest.raises(PhotostyleError, match=r"\[0, 1\]"):
        segmenter.probabilities(torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(PhotostyleError, match="shape"):
        segmenter.probabilities(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(PhotostyleError, match="255"):
        segmenter.probabilities(np.zeros((8, 8, 3), dtype=np.uint8))


def test_scaled_input_size():
    assert scaled_input_size(300, 400, 512) == (512, 672)  # 682.7 -> nearest multiple of 32
    assert scaled_input_size(400, 300, 512) == (672, 512)
    assert scaled_input_size(100, 1000, 600, max_long_side=1000) == (96, 992)  # long side capped
    assert scaled_input_size(33, 47, None) == (32, 32)
    assert all(v % 32 == 0 for v in scaled_input_size(123, 457, 375))


# --------------------------------------------------------------------------- probabilities -> masks


def test_merge_adds_probabilities():
    p = peaked_probs(bands(10, 12, [0, 1, 2, 3]), len(NAMES), seed=1)
    merged, names = merge_labels(p, NAMES, {"water": ["lake", "river"]})
    assert names == ("sky", "water", "tree", "road", "person")
    torch.testing.assert_close(merged[1], p[1] + p[2])
    torch.testing.assert_close(merged[[0, 2, 3, 4]], p[[0, 3, 4, 5]])
    torch.testing.assert_close(merged.sum(0), p.sum(0))


def test_default_merge_table_is_valid_data():
    members = [m for g in DEFAULT_MERGES for m in g.members]
    assert set(members) <= set(ADE20K_LABELS) and len(members) == len(set(members))
    assert all(isinstance(g, MergeGroup) and len(g.members) >= 2 and g.reason for g in DEFAULT_MERGES)
    assert {"lake", "river"} <= set(next(g for g in DEFAULT_MERGES if g.name == "water").members)
    p = torch.full((150, 2, 3), 1 / 150, dtype=torch.float64)
    merged, names = merge_labels(p, ADE20K_LABELS, DEFAULT_MERGES)
    assert len(names) == 150 - sum(len(g.members) - 1 for g in DEFAULT_MERGES)
    torch.testing.assert_close(merged.sum(0), torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(PhotostyleError, match="merge=()"):
        merge_labels(torch.ones(len(NAMES), 2, 2) / len(NAMES), NAMES, DEFAULT_MERGES)


def test_merged_masks_carry_the_summed_probabilities():
    c = peaked_probs(bands(12, 10, [0, 1, 2, 3]), len(NAMES), seed=2)
    s = peaked_probs(bands(9, 8, [0, 1, 3, 4]), len(NAMES), seed=3)
    m = semantic_masks(c, s, "soft", soft_pipeline="merged",
                       theta_s=1e-9, merge={"water": ["lake", "river"]}, label_names=NAMES,
                       min_style_fraction=0.05)
    assert m.labels == ("sky", "water", "tree", "road")
    kept = c[[0, 1, 3, 4]].clone()
    kept[1] += c[2]
    torch.testing.assert_close(m.content, (kept / kept.sum(0)).float(), atol=1e-6, rtol=0)


def test_theta_s_removes_exactly_the_entries_below_it():
    # every label covers a band of the style, so none is restricted away
    c = peaked_probs(bands(12, 10, [0, 1, 2, 3, 4, 5]), len(NAMES), seed=4, sharpness=1.0)
    s = peaked_probs(bands(18, 8, [0, 1, 2, 3, 4, 5]), len(NAMES), seed=5, sharpness=1.0)
    for theta in (0.05, 0.2, 0.35):
        m = semantic_masks(c, s, "soft", soft_pipeline="merged",
                           theta_s=theta, merge=(), label_names=NAMES, min_style_fraction=0.05)
        assert m.kind == "soft" and m.labels == NAMES
        for got, p in ((m.content, c), (m.style, s)):
            expected = torch.where(p >= theta, p, torch.zeros_like(p)).float()
            assert torch.equal(got > 0, p >= theta)
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
        # no renormalisation after the cutoff: sums drop below 1 where values were cut
        assert float(m.content.sum(0).max()) <= 1 + 1e-6
        assert float(m.content.sum(0).min()) < 1 - 1e-3


def test_theta_s_is_validated():
    p = peaked_probs(bands(4, 4, [0, 1]), len(NAMES), seed=6)
    for bad in (0, -0.1, 1.5, float("nan"), "x"):
        with pytest.raises(PhotostyleError, match="theta_s"):
            semantic_masks(p, p, "soft", theta_s=bad, merge=(), label_names=NAMES)
    with pytest.raises(PhotostyleError, match="mode"):
        semantic_masks(p, p, "fuzzy", merge=(), label_names=NAMES)
    with pytest.raises(PhotostyleError, match="not logits|logits"):
        semantic_masks(torch.randn(len(NAMES), 4, 4), p, merge=(), label_names=NAMES)
    with pytest.raises(PhotostyleError, match="label names"):
        semantic_masks(p[:3], p, merge=(), label_names=NAMES)


def test_hard_is_one_hot_argmax_of_soft():
    c = peaked_probs(bands(16, 12, [0, 3, 4, 5]), len(NAMES), seed=7, sharpness=1.5)
    s = peaked_probs(bands(10, 14, [0, 3, 4]), len(NAMES), seed=8, sharpness=1.5)
    hard = semantic_masks(c, s, "hard", merge=(), label_names=NAMES)
    assert hard.kind == "hard"
    for stack in (hard.content, hard.style):
        assert set(torch.unique(stack).tolist()) <= {0.0, 1.0}
        assert torch.equal(stack.sum(0), torch.ones_like(stack[0]))
    # theta_s <= 1 / (number of kept labels) never removes a pixel's largest value
    for theta in (0.01, 1 / len(NAMES)):
        soft = semantic_masks(c, s, "soft", soft_pipeline="merged", theta_s=theta, merge=(), label_names=NAMES)
        for h_stack, s_stack in ((hard.content, soft.content), (hard.style, soft.style)):
            h_names = np.array(hard.labels)[label_map(h_stack).numpy()]
            s_names = np.array(soft.labels)[label_map(s_stack).numpy()]
            assert (h_names == s_names).all()
    # as theta_s -> 1 the soft masks keep only near-certain pixels, and those agree with hard
    sharp_c = peaked_probs(bands(16, 12, [0, 3, 4, 5]), len(NAMES), seed=7, sharpness=12.0)
    sharp_s = peaked_probs(bands(10, 14, [0, 3, 4]), len(NAMES), seed=8, sharpness=12.0)
    hard = semantic_masks(sharp_c, sharp_s, "hard", merge=(), label_names=NAMES)
    soft = semantic_masks(sharp_c, sharp_s, "soft", soft_pipeline="merged", theta_s=0.99, merge=(), label_names=NAMES)
    assert soft.labels == hard.labels
    covered = soft.content.sum(0) > 0
    assert float(covered.float().mean()) > 0.5
    assert torch.equal(label_map(soft.content)[covered], label_map(hard.content)[covered])


def test_content_labels_restricted_to_the_style_and_renormalised():
    # content: sky, tree, person; style: sky, tree only
    c = peaked_probs(bands(12, 12, [0, 3, 5]), len(NAMES), seed=9)
    s = peaked_probs(bands(10, 10, [0, 3]), len(NAMES), seed=10)
    for mode in ("soft", "hard"):
        m = semantic_masks(c, s, mode, soft_pipeline="merged",
                           theta_s=1e-9, merge=(), label_names=NAMES, min_style_fraction=0.05)
        assert m.labels == ("sky", "tree")
        assert "person" in m.dropped_content_labels and "sky" not in m.dropped_content_labels
    soft = semantic_masks(c, s, "soft", soft_pipeline="merged",
                          theta_s=1e-9, merge=(), label_names=NAMES, min_style_fraction=0.05)
    kept_c, kept_s = c[[0, 3]], s[[0, 3]]
    torch.testing.assert_close(soft.content, (kept_c / kept_c.sum(0)).float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(soft.style, (kept_s / kept_s.sum(0)).float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(soft.content.sum(0), torch.ones(12, 12), atol=1e-6, rtol=0)
    # the person band now belongs to whichever kept label the segmenter preferred there
    hard = semantic_masks(c, s, "hard", merge=(), label_names=NAMES, min_style_fraction=0.05)
    person_rows = slice(8, 12)
    best = kept_c[:, person_rows].argmax(0)
    assert torch.equal(label_map(hard.content)[person_rows], best)


def test_labels_empty_after_cutoff_are_dropped():
    c = peaked_probs(bands(12, 12, [0, 3]), len(NAMES), seed=11, sharpness=10.0)
    s = peaked_probs(bands(10, 10, [0, 3, 4]), len(NAMES), seed=12)
    m = semantic_masks(c, s, "hard", merge=(), label_names=NAMES, min_style_fraction=0.05)
    assert "road" not in m.labels and "road" in m.dropped_style_labels  # style only
    assert all(float(m.content[i].amax()) > 0 and float(m.style[i].amax()) > 0 for i in range(m.num_labels))


# --------------------------------------------------------------------------- the authors' soft pipeline

#: category_merge_list of the authors' segment.py (master), 1-based ADE20K ids, typed in from their code
#: independently of ade20k.AUTHORS_MERGE_IDS.
THEIR_MERGE_LIST = [
    [22, 27, 61, 129], [18, 10, 73, 5, 33], [26, 2, 48, 1, 80, 85], [7, 53, 12, 47, 69, 14, 30, 95, 52, 102, 92],
    [87, 6], [17, 35], [60, 54, 122], [76, 20, 31, 32, 24, 70], [21, 81, 84, 103],
]
THEIR_GROUP_NAMES = ["water", "tree", "building", "road", "roof", "mountain", "stair", "chair", "vehicle"]


def their_soft_masks(pc: np.ndarray, ps: np.ndarray, cutoff: float, merge_list=THEIR_MERGE_LIST):
    """The authors' segment_img + test (segment.py, master) on (150, H, W) float32 arrays, in numpy.

    Returns (content masks, style masks, kept 0-based channel indices).
    """
    tar = ps.copy()
    tar[tar < cutoff] = 0                                   # segment_img(style): cut, no renormalisation
    valid = np.unique(tar.nonzero()[0])                     # present raw classes of the style
    inn = pc.copy()
    mask = np.zeros_like(inn)
    mask[valid] = 1
    inn = inn * mask
    inn = inn / (inn.sum(0) + np.float32(1e-6))             # segment_img(content, valid_masks)
    inn[inn < cutoff] = 0
    for cat in merge_list:                                  # merge after the cut
        cat = np.array(cat) - 1
        tar[cat[0]] = tar[cat].sum(0)
        tar[cat[1:]] = 0
        inn[cat[0]] = inn[cat].sum(0)
        inn[cat[1:]] = 0
    valid = np.unique(tar.nonzero()[0])
    return inn[valid], tar[valid], valid


def their_label_names(indices, merge_list=THEIR_MERGE_LIST, group_names=THEIR_GROUP_NAMES) -> tuple[str, ...]:
    anchor = {ids[0] - 1: name for ids, name in zip(merge_list, group_names)}
    return tuple(anchor.get(int(i), ADE20K_LABELS[int(i)]) for i in indices)


def ade_probs(h: int, w: int, rows_to_boosts: list[dict[int, float]], seed: int) -> torch.Tensor:
    """(150, H, W) float32 softmax probabilities: horizontal bands, each band's logits raised per 1-based id."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((150, h, w))
    for rows, boosts in zip(np.array_split(np.arange(h), len(rows_to_boosts)), rows_to_boosts):
        for ade_id, boost in boosts.items():
            logits[ade_id - 1, rows] += boost
    p = np.exp(logits - logits.max(0))
    return torch.from_numpy((p / p.sum(0)).astype(np.float32))


# style: sky | sea | sink (id 48, merged into building by the slip) + house | person | grass & tree (one group)
STYLE_BANDS = [{3: 7.0}, {27: 7.0}, {48: 6.0, 26: 5.5}, {13: 7.0}, {10: 5.0, 5: 5.0}]
# content: sky | lake & sea (lake absent from the style) | skyscraper (id 49) & building | person & sky | car
CONTENT_BANDS = [{3: 7.0}, {129: 6.0, 27: 5.0}, {49: 6.0, 2: 5.5}, {13: 5.0, 3: 4.5}, {21: 7.0}]


def test_authors_pipeline_is_their_formula():
    for seed, theta in ((0, 0.2), (1, 0.05), (2, 0.35), (3, 0.2)):
        pc = ade_probs(20, 12, CONTENT_BANDS, seed)
        ps = ade_probs(15, 10, STYLE_BANDS, seed + 10)
        m = semantic_masks(pc, ps, "soft", theta_s=theta)  # the default pipeline is the authors'
        want_c, want_s, idx = their_soft_masks(pc.numpy(), ps.numpy(), theta)
        assert m.pipeline == "authors" and m.kind == "soft"
        assert m.labels == their_label_names(idx)
        torch.testing.assert_close(m.content, torch.from_numpy(want_c), atol=1e-6, rtol=0)
        torch.testing.assert_close(m.style, torch.from_numpy(want_s), atol=1e-6, rtol=0)
        # the cases the bands were built for
        assert {"sky", "water", "building", "person"} <= set(m.labels)
        assert "sink" not in m.labels and "sea" not in m.labels and "house" not in m.labels


def test_authors_merge_follows_the_cut_and_the_index_48_slip():
    pc = ade_probs(20, 12, CONTENT_BANDS, 4)
    ps = ade_probs(15, 10, STYLE_BANDS, 5)
    m = semantic_masks(pc, ps, "soft", theta_s=0.2)
    ade = {n: i for i, n in enumerate(ADE20K_LABELS)}
    # style building = cut house + cut sink + ... (id 48 is sink), not renormalised
    cut = torch.where(ps >= 0.2, ps, torch.zeros_like(ps))
    building = sum(cut[ade[n]] for n in ("house", "building", "sink", "wall", "hovel", "tower"))
    torch.testing.assert_close(m.style[m.labels.index("building")], building, atol=1e-6, rtol=0)
    assert float(cut[ade["sink"]].amax()) > 0  # sink did reach the cutoff and went into building
    # skyscraper (id 49) is no member: it is a label of its own when the style has it
    assert "skyscraper" not in m.labels  # the style has none
    # content water: lake is absent from the style, so it is dropped *before* the merge
    present = cut.flatten(1).amax(1) > 0
    assert not bool(present[ade["lake"]]) and bool(present[ade["sea"]])
    kept = pc * present[:, None, None]
    q = kept / (kept.sum(0) + 1e-6)
    qcut = torch.where(q >= 0.2, q, torch.zeros_like(q))
    water = sum(qcut[ade[n]] for n in ("water", "sea", "river", "lake"))
    torch.testing.assert_close(m.content[m.labels.index("water")], water, atol=1e-6, rtol=0)
    assert float(qcut[ade["lake"]].abs().max()) == 0.0


def test_authors_presence_rule():
    names = ("a", "b", "c", "d")
    # one pixel of c at exactly the cutoff: present (their cut keeps values equal to it);
    # d is the argmax nowhere but reaches the cutoff at one pixel: present; b is below it everywhere
    style = torch.tensor([[0.75, 0.5], [0.5, 0.5]]).expand(4, 2, 2).clone()
    style[:, 0, 0] = torch.tensor([0.75, 0.0, 0.25, 0.0])
    style[:, 0, 1] = torch.tensor([0.5, 0.125, 0.0, 0.375])
    style[:, 1, 0] = torch.tensor([0.875, 0.125, 0.0, 0.0])
    style[:, 1, 1] = torch.tensor([0.875, 0.125, 0.0, 0.0])
    content = torch.full((4, 3, 3), 0.25)
    m = semantic_masks(content, style, "soft", theta_s=0.25, merge=(), label_names=names)
    assert m.labels == ("a", "c", "d")
    # a merged group is present when any member is: b + c as one label
    g = semantic_masks(content, style, "soft", theta_s=0.25, merge={"bc": ["b", "c"]}, label_names=names)
    assert g.labels == ("a", "bc", "d")
    torch.testing.assert_close(g.style[1], torch.where(style[2] >= 0.25, style[2], torch.zeros(2, 2)))
    # just above the cutoff value, c drops out
    m2 = semantic_masks(content, style, "soft", theta_s=0.2500001, merge=(), label_names=names)
    assert m2.labels == ("a", "d")
    # the merged pipeline's argmax-fraction rule gives another answer on the same stacks
    merged = semantic_masks(content, style, "soft", soft_pipeline="merged", theta_s=0.25, merge=(),
                            label_names=names, min_style_fraction=0.3)
    assert merged.labels == ("a",)


def test_authors_style_masks_are_not_renormalised_and_content_masks_are():
    pc = ade_probs(16, 10, CONTENT_BANDS, 6)
    ps = ade_probs(15, 10, STYLE_BANDS, 7)
    m = semantic_masks(pc, ps, "soft", theta_s=0.2, merge=())
    ade = [ADE20K_LABELS.index(n) for n in m.labels]
    cut = torch.where(ps >= 0.2, ps, torch.zeros_like(ps))
    torch.testing.assert_close(m.style, cut[ade], atol=0, rtol=0)  # a copy of the cut probabilities
    assert float(m.style.sum(0).max()) < 1.0  # sums below 1 where the tail was cut
    # the content is divided by its probability over the style's classes (+ their 1e-6) before the cut
    kept = pc[ade]
    q = kept / (kept.sum(0) + 1e-6)
    torch.testing.assert_close(m.content, torch.where(q >= 0.2, q, torch.zeros_like(q)), atol=1e-6, rtol=0)
    assert float((q.sum(0) - kept.sum(0) / (kept.sum(0) + 1e-6)).abs().max()) < 1e-6


def test_authors_theta_s_edge_cases():
    pc = ade_probs(12, 8, CONTENT_BANDS, 8)
    ps = ade_probs(10, 8, STYLE_BANDS, 9)
    # theta_s -> 0: every class with some probability is present and nothing is cut
    tiny = semantic_masks(pc, ps, "soft", theta_s=1e-30, merge=())
    assert tiny.labels == ADE20K_LABELS
    torch.testing.assert_close(tiny.style, ps, atol=0, rtol=0)
    torch.testing.assert_close(tiny.content, pc / (pc.sum(0) + 1e-6), atol=1e-7, rtol=0)
    # theta_s = 1: a one-hot style pixel makes its class present, but their + 1e-6 leaves every
    # renormalised content value below 1, so no content pixel survives: an error, not empty masks
    names = ("a", "b", "c")
    style = torch.tensor([[[1.0, 0.5]], [[0.0, 0.5]], [[0.0, 0.0]]])
    content = torch.tensor([[[1.0, 0.0, 0.4]], [[0.0, 1.0, 0.6]], [[0.0, 0.0, 0.0]]])
    assert float(torch.tensor(1.0) / (torch.tensor(1.0) + 1e-6)) < 1.0
    with pytest.raises(PhotostyleError, match="no label of the style keeps a content pixel at theta_s=1.0"):
        semantic_masks(content, style, "soft", theta_s=1.0, merge=(), label_names=names)
    # just below 1: the style's half-certain pixel is cut; restricted to {a} and renormalised, the
    # content's 0.4 becomes 0.4 / (0.4 + 1e-6) and is kept
    near = semantic_masks(content, style, "soft", theta_s=0.999, merge=(), label_names=names)
    assert near.labels == ("a",)
    torch.testing.assert_close(near.style, torch.tensor([[[1.0, 0.0]]]))
    torch.testing.assert_close(near.content, torch.tensor([[[1 / (1 + 1e-6), 0.0, 0.4 / (0.4 + 1e-6)]]]))
    # no class reaches theta_s in the style (random segmenter weights: probabilities near 1/150)
    flat = torch.full((150, 6, 6), 1 / 150)
    with pytest.raises(PhotostyleError, match="soft_pipeline='merged'"):
        semantic_masks(flat, flat, "soft", theta_s=0.2)
    with pytest.raises(PhotostyleError, match="soft_pipeline"):
        semantic_masks(flat, flat, "soft", soft_pipeline="luan")
    with pytest.raises(PhotostyleError, match="merge table"):
        semantic_masks(flat, flat, "soft", merge="authors")


def test_authors_keep_style_labels_empty_in_the_content():
    # style: sky and tree; content: sky only (tree never reaches the cutoff there)
    pc = ade_probs(12, 8, [{3: 8.0}], 10)
    ps = ade_probs(12, 8, [{3: 8.0}, {5: 8.0}], 11)
    authors = semantic_masks(pc, ps, "soft", theta_s=0.2)
    assert authors.labels == ("sky", "tree") and float(authors.content[1].abs().max()) == 0.0
    assert authors.dropped_style_labels == ()
    merged = semantic_masks(pc, ps, "soft", soft_pipeline="merged", theta_s=0.2)
    assert merged.labels == ("sky",) and merged.dropped_style_labels == ("tree",)
    assert merged.pipeline == "merged"
    # content labels the style lacks are reported
    pc2 = ade_probs(12, 8, [{3: 8.0}, {13: 8.0}], 12)
    assert "person" in semantic_masks(pc2, ps, "soft", theta_s=0.2).dropped_content_labels


def test_hard_masks_ignore_the_soft_pipeline():
    pc = ade_probs(12, 8, CONTENT_BANDS, 13)
    ps = ade_probs(10, 8, STYLE_BANDS, 14)
    a = semantic_masks(pc, ps, "hard", soft_pipeline="authors")
    b = semantic_masks(pc, ps, "hard", soft_pipeline="merged")
    assert a.pipeline == b.pipeline == "merged" and a.labels == b.labels
    assert torch.equal(a.content, b.content) and torch.equal(a.style, b.style)


def test_authors_merge_table_is_their_list():
    assert [ids for _, ids in AUTHORS_MERGE_IDS] == [tuple(x) for x in THEIR_MERGE_LIST]
    assert [g.name for g in AUTHORS_MERGES] == THEIR_GROUP_NAMES
    for g, ids in zip(AUTHORS_MERGES, THEIR_MERGE_LIST):
        assert g.members == tuple(ADE20K_LABELS[i - 1] for i in ids) and g.reason
    building = next(g for g in AUTHORS_MERGES if g.name == "building")
    assert ADE20K_LABELS[47] == "sink" and ADE20K_LABELS[48] == "skyscraper"
    assert "sink" in building.members and "skyscraper" not in building.members
    members = [m for g in AUTHORS_MERGES for m in g.members]
    assert len(members) == len(set(members)) == 43


def test_tiny_random_segmenter_is_peaked_enough_for_the_authors_pipeline(segmenter, image):
    style_image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(1))
    pc, ps = segmenter.probabilities(image), segmenter.probabilities(style_image)
    assert float(pc.amax(0).mean()) > 0.5  # not the 1/150 of a default-initialised head
    m = semantic_masks(pc, ps, "soft", theta_s=0.2)
    assert m.pipeline == "authors" and m.num_labels >= 1 and float(m.content.amax()) >= 0.2


def test_paper_scales_are_the_authors_image_sizes():
    from photostyle_lib.semantic.segmenter import CSAIL_SCALES, PAPER_SCALES

    assert PAPER_SCALES == (300, 400, 500, 600)  # --imgSize default of their segment.py
    assert CSAIL_SCALES == (300, 375, 450, 525, 600) and PAPER_SCALES != CSAIL_SCALES


def _write_png(path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(path)


def test_gold_and_segmenter_masks_are_interchangeable(segmenter, image, tmp_path):
    content = np.zeros((32, 48, 3))
    content[:16] = (0, 0, 255)
    content[16:] = (0, 255, 0)
    style = np.zeros((20, 30, 3))
    style[:8] = (0, 0, 255)
    style[8:] = (0, 255, 0)
    _write_png(tmp_path / "c.png", content)
    _write_png(tmp_path / "s.png", style)
    gold = load_gold_masks(tmp_path / "c.png", tmp_path / "s.png")

    style_image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(1))
    pc, ps = segmenter.probabilities(image), segmenter.probabilities(style_image)
    # the merged pipeline with a tiny cutoff and every argmax label counted as present
    soft = semantic_masks(pc, ps, "soft", soft_pipeline="merged", theta_s=1e-3, min_style_fraction=0.0)
    hard = semantic_masks(pc, ps, "hard")
    for m in (gold, soft, hard):
        assert type(m) is SemanticMasks
        r = m.resized((16, 24), (10, 15))
        assert r.content.shape[1:] == (16, 24) and r.style.shape[1:] == (10, 15)
        assert r.content.shape[0] == r.style.shape[0] == len(r.labels)
    assert (gold.kind, soft.kind, hard.kind) == ("gold", "soft", "hard")
    assert soft.content.shape[1:] == (32, 48) and soft.style.shape[1:] == (20, 30)


# --------------------------------------------------------------------------- the cache


def _count_forward_calls(segmenter) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    segmenter.model.register_forward_hook(hook)
    return calls


def test_cache_returns_identical_arrays_without_rerunning(image, tmp_path):
    seg = ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=0, device="cpu", scales=(32,))
    calls = _count_forward_calls(seg)
    cache = SegmentationCache(tmp_path / "seg")
    first = cache.probabilities(seg, image)
    assert calls[0] == 1 and cache.misses == 1
    torch.testing.assert_close(first.sum(0), torch.ones(32, 48), atol=1e-5, rtol=0)
    torch.testing.assert_close(first, seg.probabilities(image), atol=2e-3, rtol=0)  # float16 storage
    calls[0] = 0
    again = cache.probabilities(seg, image)  # from memory
    from_disk = SegmentationCache(tmp_path / "seg").probabilities(seg, image)  # fresh memory: from disk
    assert calls[0] == 0
    assert torch.equal(again, first) and torch.equal(from_disk, first)
    assert len(list((tmp_path / "seg").glob("*.npz"))) == 1
    assert not list((tmp_path / "seg").glob("*.tmp"))  # the temporary file was renamed away


def test_cache_key_depends_on_image_checkpoint_and_scales(image, tmp_path):
    cache = SegmentationCache(tmp_path, memory=False)
    a = ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=0, device="cpu", scales=(32,))
    b = ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=0, device="cpu", scales=(32, 64))
    c = ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=1, device="cpu", scales=(32,))
    keys = {cache.key(a, image), cache.key(b, image), cache.key(c, image), cache.key(a, image.flip(-1)),
            cache.key(a, image[..., :40])}
    assert len(keys) == 5
    assert cache.key(a, image) == cache.key(a, image[0].permute(1, 2, 0).numpy())


class _StubSegmenter:
    """Stands in for ADE20KSegmenter in the cache: fixed probabilities, counted calls."""

    def __init__(self, prob: torch.Tensor) -> None:
        self.prob, self.calls = prob, 0

    def describe(self) -> dict:
        return {"identity": "stub"}

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.prob


def test_cache_keeps_tiny_probabilities_that_restriction_needs(image, tmp_path):
    # a confident "person" pixel (channel 12) with sky (2) and tree (4) far in the tail
    prob = torch.full((150, 32, 48), 1e-20)
    prob[2], prob[4] = 3e-12, 1e-12
    prob[12] = 0.0
    prob[12] = 1 - prob.sum(0)
    stub = _StubSegmenter(prob)
    cache = SegmentationCache(tmp_path)
    got = cache.probabilities(stub, image)
    assert torch.equal(SegmentationCache(tmp_path).probabilities(stub, image), got) and stub.calls == 1
    torch.testing.assert_close(got.sum(0), torch.ones(32, 48), atol=1e-6, rtol=0)
    torch.testing.assert_close(got[[2, 4]], prob[[2, 4]], rtol=0.05, atol=0)  # float16 would flush these to 0
    # restricted to a style of sky and tree, the pixel goes to sky, 3:1 over tree
    style = torch.zeros(150, 8, 8)
    style[2, :4], style[4, 4:] = 1.0, 1.0
    soft = semantic_masks(got, style, "soft", soft_pipeline="merged", theta_s=0.01, merge=())
    assert soft.labels == ("sky", "tree") and "person" in soft.dropped_content_labels
    torch.testing.assert_close(soft.content[:, 0, 0], torch.tensor([0.75, 0.25]), atol=0.02, rtol=0)
    hard = semantic_masks(got, style, "hard", merge=())
    assert torch.equal(label_map(hard.content), torch.zeros(32, 48, dtype=torch.int64))


def test_corrupt_cache_entry_is_recomputed(image, tmp_path):
    seg = ADE20KSegmenter("random", config=architecture_config(tiny=True), seed=0, device="cpu", scales=(32,))
    calls = _count_forward_calls(seg)
    cache = SegmentationCache(tmp_path, memory=False)
    first = cache.probabilities(seg, image)
    path = cache.path(cache.key(seg, image))
    path.write_bytes(b"truncated")
    second = cache.probabilities(seg, image)
    assert calls[0] == 2 and torch.equal(first, second)
    with pytest.raises(PhotostyleError, match="directory"):
        SegmentationCache(None, memory=False)


@pytest.mark.parametrize("damage", ["zeroed", "flipped", "truncated"])
def test_damaged_cache_entry_is_discarded_with_one_warning(image, tmp_path, capsys, damage):
    """Issue 37, case 5: a zeroed .npz (EOFError), flipped bytes in its compressed data (zlib.error)
    or a cut file: one warning line naming the entry, then a recomputation that rewrites it, so the
    next call reads it back silently."""
    stub = _StubSegmenter(torch.softmax(torch.randn(150, 32, 48, generator=torch.Generator().manual_seed(0)), 0))
    cache = SegmentationCache(tmp_path, memory=False)
    first = cache.probabilities(stub, image)
    path = cache.path(cache.key(stub, image))
    data = bytearray(path.read_bytes())
    if damage == "zeroed":
        data = bytearray(len(data))
    elif damage == "flipped":
        for i in range(200, len(data) - 200, 97):  # inside the deflate stream, not the zip directory
            data[i] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert torch.equal(cache.probabilities(stub, image), first) and stub.calls == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "recomputing" in err
    assert torch.equal(SegmentationCache(tmp_path, memory=False).probabilities(stub, image), first)
    assert stub.calls == 2 and capsys.readouterr().err == ""


def test_killed_writers_temp_file_is_removed_by_the_next_write(image, tmp_path):
    """Issue 37, case 5: a temp file of a dead process (its pid in the name) is removed when the
    entry is next written; a live writer's is left alone."""
    import subprocess
    import sys

    from photostyle_lib.io.outputs import temp_prefix

    stub = _StubSegmenter(torch.softmax(torch.randn(150, 32, 48, generator=torch.Generator().manual_seed(1)), 0))
    cache = SegmentationCache(tmp_path, memory=False)
    name = cache.path(cache.key(stub, image)).name
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / temp_prefix(name).replace(f"~{os.getpid()}~", f"~{pid}~")
    stale = stale.with_name(stale.name + "abc.tmp")
    live = tmp_path / f"{temp_prefix(name)}xyz.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"mine")
    cache.probabilities(stub, image)
    assert not stale.exists() and live.exists()
