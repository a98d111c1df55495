/* sustain_pick.c — see sustain_pick.h. */
#include "sustain_pick.h"

int cs_sustain_pick(const cs_sustain_step *s, int n, double *fail_rate, int *above)
{
    double fail = 0;
    for (int i = 0; i < n; i++)
        if (s[i].final && !s[i].kept_up && s[i].achieved > 0 && (fail == 0 || s[i].achieved < fail))
            fail = s[i].achieved;
    int best = -1, left_out = 0;
    for (int i = 0; i < n; i++) {
        if (!s[i].kept_up)
            continue;
        if (fail > 0 && s[i].achieved >= fail) {
            left_out++;
            continue;
        }
        if (best < 0 || s[i].achieved > s[best].achieved)
            best = i;
    }
    if (fail_rate)
        *fail_rate = fail;
    if (above)
        *above = left_out;
    return best;
}
