"""Merging similar ADE20K labels: the two merges the soft pipelines use (section 4).

The paper merges "similar labels" of the segmenter without saying which or
how. Two merges, on (K, H, W) probability stacks:

* :func:`merge_labels` -- a group's members are added into one channel and the
  stack shrinks to K' channels (the ``"merged"`` pipeline's; our choice).
* :func:`merge_into_first_member` -- the authors' code's
  ``pred[cat[0]] = pred[cat].sum(0)``: the sum goes into the first member's
  channel, the other members' channels become 0, and K stays.

Merge tables (which labels go together) are data:
:data:`photostyle_lib.semantic.ade20k.DEFAULT_MERGES` and ``AUTHORS_MERGES``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.ade20k import DEFAULT_MERGES, MergeGroup

#: A merge table: ``ade20k.MergeGroup`` values, a mapping ``{merged name: [member labels]}``, or None for none.
MergeSpec = Sequence[MergeGroup] | Mapping[str, Sequence[str]] | None


def _normalise_groups(merge: MergeSpec) -> tuple[MergeGroup, ...]:
    if merge is None:
        return ()
    if isinstance(merge, Mapping):
        return tuple(MergeGroup(str(k), tuple(v), "") for k, v in merge.items())
    groups = tuple(merge)
    for g in groups:
        if not isinstance(g, MergeGroup):
            raise PhotostyleError("merge must be a sequence of ade20k.MergeGroup, a mapping "
                                  f"{{name: [labels]}} or None, got an item {g!r}")
    return groups


def checked_groups(names: tuple[str, ...], merge: MergeSpec) -> tuple[MergeGroup, ...]:
    """The merge groups, each member a label name of ``names`` and in one group at most.

    Raises
    ------
    PhotostyleError
        If a group has no members, names a label not among the label names, or a
        label is in two groups.
    """
    groups = _normalise_groups(merge)
    owner: dict[str, MergeGroup] = {}
    for g in groups:
        if not g.members:
            raise PhotostyleError(f"merge group {g.name!r} has no members")
        for m in g.members:
            if m not in names:
                raise PhotostyleError(
                    f"merge group {g.name!r} names label {m!r}, which is not among the label names; "
                    "fix the merge table, or pass merge=() for label sets other than ADE20K's")
            if m in owner:
                raise PhotostyleError(f"label {m!r} is in two merge groups ({owner[m].name!r} and {g.name!r}); "
                                      "put each label in one group at most")
            owner[m] = g
    return groups


def check_unique_names(out_names: Sequence[str]) -> None:
    """Check that the label names after merging are distinct.

    Parameters
    ----------
    out_names : sequence of str
        Merge group names and the labels left unmerged.

    Raises
    ------
    PhotostyleError
        If a name appears twice, naming the duplicates.
    """
    if len(set(out_names)) != len(out_names):
        dup = sorted({n for n in out_names if list(out_names).count(n) > 1})
        raise PhotostyleError(f"merged label names clash with other labels: {', '.join(dup)}; "
                              "name each merge group after one of its members or a new name")


def merge_labels(prob: torch.Tensor, label_names: Sequence[str],
                 merge: MergeSpec = DEFAULT_MERGES) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Merge similar labels by adding their probabilities (the ``"merged"`` pipeline's merge).

    Parameters
    ----------
    prob
        (K, H, W) probabilities (any float dtype), K = len(label_names).
    label_names
        the K names.
    merge
        groups to merge (:data:`photostyle_lib.semantic.ade20k.DEFAULT_MERGES`, a
        mapping ``{merged name: [member labels]}``, or None / () for none).

    Returns
    -------
    tuple[torch.Tensor, tuple[str, ...]]
        (K', H, W) probabilities and the K' names: a group's channel, named after
        the group, sits where its first member in label order was; unmerged
        labels keep their order. Per-pixel sums are unchanged.
    """
    names = tuple(label_names)
    owner = {m: g for g in checked_groups(names, merge) for m in g.members}
    out_names: list[str] = []
    rows: list[torch.Tensor] = []
    done: set[str] = set()
    for i, n in enumerate(names):
        g = owner.get(n)
        if g is None:
            out_names.append(n)
            rows.append(prob[i])
        elif g.name not in done:
            done.add(g.name)
            out_names.append(g.name)
            rows.append(prob[[names.index(m) for m in g.members]].sum(0))
    check_unique_names(out_names)
    return torch.stack(rows), tuple(out_names)


def absorbed_channels(names: tuple[str, ...], groups: Sequence[MergeGroup]) -> set[int]:
    """Channels emptied by a merge: every member but the first of each group."""
    return {names.index(m) for g in groups for m in g.members[1:]}


def merge_into_first_member(prob: torch.Tensor, names: tuple[str, ...],
                             groups: Sequence[MergeGroup]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """The authors' merge: (K, H, W) -> (K, H, W), a group's sum in its first member's channel, the rest 0.

    Channel positions do not move (the group's channel is where ``members[0]``
    is, and takes the group's name), as in their ``pred[cat[0]] = pred[cat].sum(0)``.
    """
    out = prob.clone()
    out_names = list(names)
    for g in groups:
        idx = [names.index(m) for m in g.members]
        out[idx[0]] = prob[idx].sum(0)
        out[idx[1:]] = 0.0
        out_names[idx[0]] = g.name
    absorbed = absorbed_channels(names, groups)
    check_unique_names([n for i, n in enumerate(out_names) if i not in absorbed])
    return out, tuple(out_names)
