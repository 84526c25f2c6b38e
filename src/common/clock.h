/* Time: monotonic for durations, wall clock for records; the one place
 * ferry sleeps, backs off and notices that it was asked to stop. */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

long long clock_mono_ms(void);
long long clock_wall_s(void);

/* A timespec (a file time, say) as nanoseconds since the epoch. */
long long clock_ts_ns(struct timespec ts);
/* The wall clock in nanoseconds, as file times are kept. */
long long clock_wall_ns(void);

/* A cancel token: set once by whoever owns the work (a job's cancel, a
 * worker draining, ^C), seen by every wait that was handed it. Setting it
 * wakes the sleepers at once; cancel_set_flag only marks it (safe in a
 * signal handler) and sleepers see it within CLOCK_CANCEL_POLL_MS. */
struct cancel {
	atomic_bool set;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct cancel *parent; /* set too when this is (a worker's drain) */
};

#define CLOCK_CANCEL_POLL_MS 100

void cancel_init(struct cancel *c);
/* A token that is also set whenever `parent` is: a job's own cancel under
 * the worker's drain. Sleepers see the parent within CLOCK_CANCEL_POLL_MS. */
void cancel_init_child(struct cancel *c, const struct cancel *parent);
void cancel_release(struct cancel *c);
void cancel_set(struct cancel *c);
void cancel_set_flag(struct cancel *c);
/* Clear this token (not its parent): the work it stopped is over and what
 * follows must be able to wait again. */
void cancel_reset(struct cancel *c);
/* False for a NULL token; true when it or a parent of it is set. */
bool cancel_is_set(const struct cancel *c);

/* Sleep `ms` milliseconds (through EINTR), or until `c` (may be NULL) is
 * set: then ERR_CANCELLED, else 0. */
int clock_sleep_ms(long long ms, struct cancel *c);

/* Exponential backoff: waits of first_ms, doubled each time up to max_ms;
 * with `jitter`, each wait is drawn from [w/2, w] so that many waiters do
 * not come back at once. Zero-initialised fields take 1 s and 30 s. */
struct backoff {
	long long first_ms, max_ms;
	bool jitter;
	long long next_ms;       /* the coming wait; 0: first_ms */
	int tries;               /* waits taken since the last reset */
};

/* The coming wait, and the one after it made longer. */
long long backoff_next(struct backoff *b);
/* Back to the first wait (after a success). */
void backoff_reset(struct backoff *b);
/* Sleep the coming wait: 0, or ERR_CANCELLED. */
int backoff_sleep(struct backoff *b, struct cancel *c);

#endif
