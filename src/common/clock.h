/* Time sources: monotonic for durations, wall clock for records. */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

long long clock_mono_ms(void);
long long clock_wall_s(void);

#endif
