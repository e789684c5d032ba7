"""Weighted reciprocal rank fusion: the maths by hand, and its order properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ensemble_nb.core.retrieval.fusion import RRF_K, Ranking, reciprocal_rank_fusion, rrf_score


def test_scores_match_hand_computed_values() -> None:
    fused = reciprocal_rank_fusion([Ranking("a", [1, 2, 3]), Ranking("b", [3, 1])])
    by_id = {f.doc_id: f for f in fused}
    assert RRF_K == 60
    assert by_id[1].score == pytest.approx(1 / 61 + 1 / 62)  # first in a, second in b
    assert by_id[3].score == pytest.approx(1 / 63 + 1 / 61)
    assert by_id[2].score == pytest.approx(1 / 62)
    # 1/61+1/62 = 0.032522 > 1/63+1/61 = 0.032266 > 1/62 = 0.016129
    assert [f.doc_id for f in fused] == [1, 3, 2]
    assert by_id[1].retrievers == ("a", "b") and by_id[2].retrievers == ("a",)
    assert by_id[3].best_rank == 1 and by_id[2].best_rank == 2


def test_weights_scale_each_rankers_vote() -> None:
    fused = reciprocal_rank_fusion([Ranking("bm25", [7, 8], 1.0), Ranking("dense", [8, 7], 0.5)])
    by_id = {f.doc_id: f.score for f in fused}
    assert by_id[7] == pytest.approx(1.0 / 61 + 0.5 / 62)  # 0.024458
    assert by_id[8] == pytest.approx(1.0 / 62 + 0.5 / 61)  # 0.024326
    assert [f.doc_id for f in fused] == [7, 8]
    # With the weights swapped, the dense ranker's order wins.
    swapped = reciprocal_rank_fusion([Ranking("bm25", [7, 8], 0.5), Ranking("dense", [8, 7], 1.0)])
    assert [f.doc_id for f in swapped] == [8, 7]


def test_k_top_k_duplicates_and_bad_input() -> None:
    assert reciprocal_rank_fusion([Ranking("a", [4, 5, 6])], k=0)[0].score == pytest.approx(1.0)
    assert [f.doc_id for f in reciprocal_rank_fusion([Ranking("a", [4, 5, 6])], top_k=2)] == [4, 5]
    once = reciprocal_rank_fusion([Ranking("a", [4, 4, 5])])
    assert once[0].score == pytest.approx(1 / 61) and once[1].score == pytest.approx(1 / 63)
    assert reciprocal_rank_fusion([]) == []
    assert rrf_score([(1, 1.0), (2, 0.5)]) == pytest.approx(1 / 61 + 0.5 / 62)
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([Ranking("a", [1], -1.0)])
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([Ranking("a", [1])], k=-1)


def test_ties_break_on_best_rank_then_id() -> None:
    # 10 and 12: 1/61 + 1/63 = 0.0322665 each; 11: 2/62 = 0.0322581, just below.
    fused = reciprocal_rank_fusion([Ranking("a", [10, 11, 12]), Ranking("b", [12, 11, 10])])
    assert [f.doc_id for f in fused] == [10, 12, 11]  # the 10/12 tie goes to the lower id
    # k=0: doc 9 scores 1/1 (rank 1), doc 5 scores 2 x 1/2 (rank 2): equal, the better rank wins.
    fused = reciprocal_rank_fusion([Ranking("a", [9]), Ranking("b", [7, 5], 2.0)], k=0)
    assert [(f.doc_id, f.score) for f in fused] == [(7, 2.0), (9, 1.0), (5, 1.0)]


rankings_st = st.lists(
    st.lists(st.integers(min_value=0, max_value=30), min_size=0, max_size=12, unique=True),
    min_size=1, max_size=5)


@given(rankings_st, st.randoms(use_true_random=False))
def test_order_does_not_depend_on_the_order_of_the_rankers(lists: list[list[int]], rnd: object) -> None:
    rankings = [Ranking(f"r{i}", ids) for i, ids in enumerate(lists)]
    shuffled = list(rankings)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = reciprocal_rank_fusion(rankings)
    b = reciprocal_rank_fusion(shuffled)
    assert [f.doc_id for f in a] == [f.doc_id for f in b]
    assert [f.score for f in a] == [f.score for f in b]  # fsum: bit-identical, not just close


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=50),
       st.lists(st.integers(min_value=100, max_value=200), max_size=20, unique=True))
def test_found_by_two_beats_found_by_one_at_the_same_rank(rank_a: int, rank_b: int, filler: list[int]) -> None:
    """Doc 1 is at rank_a in ranker a and rank_b in ranker b; doc 2 only at rank_a in c."""
    def at(rank: int, doc: int) -> list[int]:
        pad = [d for d in range(1000, 1000 + rank - 1)]
        return [*pad, doc, *filler]

    fused = reciprocal_rank_fusion([Ranking("a", at(rank_a, 1)), Ranking("b", at(rank_b, 3)),
                                    Ranking("c", at(rank_a, 2)), Ranking("d", at(rank_b, 1))])
    order = [f.doc_id for f in fused]
    assert order.index(1) < order.index(2)
    assert order.index(1) < order.index(3)
