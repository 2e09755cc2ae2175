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
every relation collected from the marts). Families, by the name each relation carries:

response_by_indication (levels indication x regimen, indication_group, all)
- response.categories: n_meaningful + n_minimal + n_intolerant = n_evaluable, on every row.
- response.totals: n_evaluable + n_not_assessable = n_patients, on every row.
- response.indications_to_group: per count column, a group's indication x regimen rows add up
  to the group's row.
- response.groups_to_all: per count column, the group rows add up to the all-patients row.

cohort_flow (one row per indication, plus 'all')
- flow.categories: enrolled = n_meaningful + n_minimal + n_intolerant + n_not_assessable.
- flow.indications_to_all: per column, the indication rows add up to the 'all' row.
- flow.steps: with_baseline, reached_day_56 and assessed are each <= enrolled.
- flow.meaningful_needs_values: n_meaningful <= with_baseline and n_meaningful <= assessed (a
  patient is meaningful only with both a baseline and an assessment value).

cohort_flow against response_by_indication (the same patients, counted in two marts)
- flow_vs_response.indication: an indication's enrolled and each category = the sum over its
  regimens of response's n_patients and that category.
- flow_vs_response.all: the 'all' rows agree likewise.

tolerability (indication incl. 'all' x regimen x event x dose band; a row only where an event
happened)
- tolerability.nested: n_discontinued <= n_patients <= n_exposed, on every row.
- tolerability.exposed_repeated: n_exposed is one number per (indication, regimen, dose band),
  repeated on each of its event rows: those cells are equal.
- tolerability.indications_to_all: n_patients and n_discontinued of the indication rows add up
  to the 'all' row of the same regimen, event and dose band (a missing row is a zero).
- tolerability.exposed_to_all: the indications' n_exposed add up to the 'all' n_exposed of the
  same regimen and dose band. An indication exposed to a band without any event in it
  publishes no n_exposed there, so this is `<=`, or `=` where the published indications make up
  the whole 'all' count (an outsider may be able to tell; assuming so is the safe side).
- tolerability_vs_response.exposed: n_exposed of (indication, regimen, band) <= response's
  n_patients of (indication, regimen).

titration (indication incl. 'all' x LDN starting dose band)
- titration.nested: n_sleep_event <= n_patients and n_intolerant <= n_patients, on every row.
- titration.indications_to_all: per band and column, the indication rows add up to 'all'.
- titration_vs_tolerability.exposed: n_patients of (indication, band) <= tolerability's n_exposed
  of (indication, 'ldn', band) where that row is published (a patient starting in a band was
  exposed to it).
- titration_vs_response.ldn: an indication's n_patients and n_intolerant summed over starting
  bands are <= response's n_patients and n_intolerant of (indication, 'ldn').

measure_trajectory (indication x instrument x visit week x category)
- trajectory_vs_flow.category: n_patients <= cohort_flow's count of that category for the
  indication (a patient has one value per instrument and week).

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
outsider they are at most min_cell_size - 1).
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
