"""Query plans (deployments/catalogue/plans.py): every mode against every kind of query, and
a mode that cannot use part of the query refused, never that part dropped."""

from __future__ import annotations

import pytest

from pardus.deployments.catalogue.plans import PlanError, make_plan
from pardus.deployments.catalogue.schema import IMAGE_VECTOR, PAIR_VECTOR
from pardus.deployments.names import Mode, QueryKind
from pardus.deployments.settings import SearchSettings

TEXT, IMAGE, COMPOSED = QueryKind.TEXT, QueryKind.IMAGE, QueryKind.COMPOSED
# (kind, mode asked) -> (mode run, the vector searched, BM25 over the words)
RUNS = {
    (TEXT, Mode.AUTO): (Mode.HYBRID, PAIR_VECTOR, True),
    (TEXT, Mode.DENSE): (Mode.DENSE, PAIR_VECTOR, False),
    (TEXT, Mode.LEXICAL): (Mode.LEXICAL, None, True),
    (TEXT, Mode.HYBRID): (Mode.HYBRID, PAIR_VECTOR, True),
    (IMAGE, Mode.AUTO): (Mode.DENSE, IMAGE_VECTOR, False),
    (IMAGE, Mode.DENSE): (Mode.DENSE, IMAGE_VECTOR, False),
    (COMPOSED, Mode.AUTO): (Mode.HYBRID, IMAGE_VECTOR, True),
    (COMPOSED, Mode.DENSE): (Mode.DENSE, IMAGE_VECTOR, False),  # one vector of both parts
    (COMPOSED, Mode.HYBRID): (Mode.HYBRID, IMAGE_VECTOR, True),
}
# (kind, mode asked) -> what the refusal names: the part that would be dropped or is missing
REFUSED = {
    (IMAGE, Mode.LEXICAL): "give a text",
    (IMAGE, Mode.HYBRID): "give a text",
    (COMPOSED, Mode.LEXICAL): "would drop the image",
}


def test_every_kind_and_mode_is_planned_or_refused():
    assert set(RUNS) | set(REFUSED) == {(k, m) for k in QueryKind for m in Mode}


@pytest.mark.parametrize(("kind", "mode"), list(RUNS))
def test_a_mode_that_uses_every_part_of_the_query_runs(kind, mode):
    plan = make_plan(kind, SearchSettings(), mode)
    assert (plan.mode, plan.dense_field, plan.lexical) == RUNS[kind, mode]


@pytest.mark.parametrize(("kind", "mode"), list(REFUSED))
def test_a_mode_that_cannot_use_part_of_the_query_is_refused(kind, mode):
    with pytest.raises(PlanError) as refused:
        make_plan(kind, SearchSettings(), mode)
    assert refused.value.code == "invalid_mode" and refused.value.field == "mode"
    assert REFUSED[kind, mode] in refused.value.message
    assert "'dense'" in refused.value.message  # a mode that does


def test_the_server_s_default_mode_is_checked_too():
    with pytest.raises(PlanError, match="would drop the image"):
        make_plan(COMPOSED, SearchSettings(mode=Mode.LEXICAL))
