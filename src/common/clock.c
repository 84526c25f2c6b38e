#include "clock.h"

#include <time.h>

long long clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long clock_ts_ns(struct timespec ts)
{
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

long long clock_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return clock_ts_ns(ts);
}

long long clock_wall_s(void)
{
	return (long long)time(NULL);
}
