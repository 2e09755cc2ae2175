"""Disclosure audit of the release bundle: small-cell suppression checked across every mart at once.

Why: suppressing each count from 1 to min_cell_size - 1 and then protecting one equation at a
time (pipelines/marts/suppression.py) leaves cells an outsider recovers by combining equations
and marts: an indication's enrolled count is the all-patients row minus the other indications
in cohort_flow, and also the sum of its regimen rows in response_by_indication. Here every
linear relation an outsider knows between the released counts is collected as data
(`collect_relations`), a linear program bounds each suppressed cell under all of them at once
(`feasible_ranges`), and `protect` suppresses more cells until no small count can be narrowed
down. The internal marts stay unsuppressed; this module only shapes what leaves the clinic.

Relations have integer coefficients over cells (`sum(coef * cell) == rhs` or `<= rhs`, rhs 0 for
every relation collected from the marts). They are generated (`relations.py`) from the
`release:` block at the end of each released mart's sql/marts/<mart>.yml, each with its family
name: within a row (categories add up to the evaluable count, discontinued <= patients with
the event <= exposed, ...), a number repeated on several rows (tolerability's n_exposed),
hierarchies (indication -> indication group -> all patients, indications -> 'all'), the same
patients counted in two marts (cohort_flow against response_by_indication, titration against
tolerability and response, trajectories against cohort_flow), and relations that hold by
construction (a one-band regimen's n_exposed = its n_patients; titration starters summed over
bands = the indication's LDN patients), which are equalities wherever the data holds them and
`<=` elsewhere (the outsider may assume them: the safe side). tests/test_release_relations.py
searches data for equalities the declarations miss.

Modules: `relations.py` (cells, relations, the declarations), `lp.py` (the HiGHS model and
ranges), `protection.py` (the greedy, the audit, a release among releases), `frames.py` (the
release frames). This module re-exports their public names.

The audit is the linear-programming relaxation that tau-Argus and statistical offices use:
published cells are fixed to their values, suppressed cells are variables >= 1 (zero is always
shown, so a hidden cell is known to be non-zero), and the LP minimum and maximum of a suppressed
cell bound what an outsider can infer about it. Relaxing integrality only widens the range, so
the integer range ([ceil(low), floor(high)], which is what the protection test uses) lies
inside the LP range. Suppressed cells linked by no chain of relations cannot inform each other,
so each connected component of suppressed cells is solved on its own. All of them live in one
HiGHS model (highspy) over every cell, published cells fixed by their bounds: hiding a cell or
asking about another changes bounds and costs only, and each solve starts from the last basis
(a few simplex iterations instead of an LP built and solved from scratch).

Protection: a primary cell (true count 1..min_cell_size - 1) is protected when its range covers
[floor, min_cell_size - 1], where `floor` is what the pattern of zeros alone says (its minimum
with every non-zero cell hidden). That floor is 1 for nearly every cell; a total of k non-zero
parts is at least k whatever else is hidden (zero is shown), so demanding 1 there could never
be met, and the outsider learns nothing from it that the zeros did not already say.
Complementary cells need no protection of their own. Most sides are proven by a witness: one
LP pushes every cell in question down to 1 (or up to min_cell_size - 1) at once, and a cell
that gets there is protected on that side; only the others need their exact bound. `audit` and
protect's last check give the same answer as the exact range of every cell, for a few LPs.

`protect` suppresses every count 1..min_cell_size - 1 (zero is shown), then takes the disclosed
primary cells one at a time and suppresses published non-zero cells next to each (in a relation
with it first, and among those the ones in relations that bind its range) until it is protected:
the smallest that protects it on its own, else the smallest. Hiding a cell only widens ranges,
so a cell once protected stays so. The result has the release frames (counts Int64 with <NA>,
derived columns NaN, a `suppressed` flag per row), a report for the clinic, and a public report
for the manifest that does not say which hidden cells are the small ones (that would tell an
outsider they are at most min_cell_size - 1). A last pass publishes again every complementary
cell no small count needs (the greedy works one target at a time). How far that is from the
best suppression can do is measured, not guessed: `complement_lower_bound` proves how many
complementary cells any safe pattern needs (an integer program cut by the LP audit's dual
certificates; on the demo the greedy is within 4 cells of it).

Across releases (`protect_release`): one LP holds every release in the ledger and the new one,
and per pair of releases a difference cell per count (new - old, oriented >= 0, at least 0 in
the LP): the count of the patients added or changed there, a primary cell like any other when
it is 1..min_cell_size - 1. Earlier releases are fixed as sent; only the new one's cells may
be hidden, never its all-patients category counts (always published). A release after 1..10
added or changed patients, or whose always-shown counts moved by 1..10, is refused before any
LP, with how many more patients it needs.
"""

from pipelines.release.frames import suppressed_frames
from pipelines.release.lp import feasible_ranges
from pipelines.release.protection import ReleaseResult, audit, protect
from pipelines.release.relations import (
    CATEGORY_COUNTS,
    COUNT_COLUMNS,
    DERIVED_COLUMNS,
    KEY_COLUMNS,
    Cell,
    Relation,
    cell_values,
    collect_relations,
)

__all__ = ["CATEGORY_COUNTS", "COUNT_COLUMNS", "DERIVED_COLUMNS", "KEY_COLUMNS", "Cell", "Relation", "ReleaseResult",
           "audit", "cell_values", "collect_relations", "feasible_ranges", "protect", "suppressed_frames"]
