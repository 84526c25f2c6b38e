/* Time sources: monotonic for durations, wall clock for records. */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

#include <time.h>

long long clock_mono_ms(void);
long long clock_wall_s(void);

/* A timespec (a file time, say) as nanoseconds since the epoch. */
long long clock_ts_ns(struct timespec ts);
/* The wall clock in nanoseconds, as file times are kept. */
long long clock_wall_ns(void);

#endif
