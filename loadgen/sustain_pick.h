/* sustain_pick.h — which step of a --find-sustainable search is the figure.
 *
 * Contract: pure, no allocation. Sustainability is taken as monotonic in the rate: a system
 * that fell behind at R cannot keep up with R' > R. So the figure is the highest sent/s among
 * steps where clickstage kept up (lag flat, p99 under the bound), excluding every such step at
 * or above the lowest sent/s where clickstage's final verdict for a rate (after its retries)
 * was a failure of its own: those met a quiet moment of a shared machine, not a capacity.
 * A step superseded by a retry of the same rate does not set the failure bound (its retry
 * decides); a generator shortfall is not clickstage's failure.
 */
#ifndef CS_SUSTAIN_PICK_H
#define CS_SUSTAIN_PICK_H

typedef struct cs_sustain_step {
    double achieved; /* events/s the generator sent in the judged window */
    int kept_up;     /* clickstage's part held: lag not growing, p99 under the bound */
    int final;       /* the last verdict for its rate (no retry of it followed) */
} cs_sustain_step;

/* Returns the index of the figure's step, or -1 when none qualifies. *fail_rate (may be NULL):
 * the lowest sent/s of a final clickstage failure, 0 when none; *above (may be NULL): kept-up
 * steps left out because they are at or above it. */
int cs_sustain_pick(const cs_sustain_step *s, int n, double *fail_rate, int *above);

#endif
