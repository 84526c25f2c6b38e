#include "clock.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "err.h"

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

/* ---- cancel ---- */

void cancel_init(struct cancel *c)
{
	pthread_condattr_t ca;

	atomic_init(&c->set, false);
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	c->parent = NULL;
}

void cancel_init_child(struct cancel *c, const struct cancel *parent)
{
	cancel_init(c);
	c->parent = parent;
}

void cancel_release(struct cancel *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
}

void cancel_set(struct cancel *c)
{
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->set, true);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void cancel_reset(struct cancel *c)
{
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->set, false);
	pthread_mutex_unlock(&c->lock);
}

void cancel_set_flag(struct cancel *c)
{
	atomic_store(&c->set, true);
}

bool cancel_is_set(const struct cancel *c)
{
	for (; c; c = c->parent)
		if (atomic_load(&((struct cancel *)c)->set))
			return true;
	return false;
}

static void plain_sleep_ms(long long ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int clock_sleep_ms(long long ms, struct cancel *c)
{
	long long end = clock_mono_ms() + (ms > 0 ? ms : 0);

	if (!c) {
		if (ms > 0)
			plain_sleep_ms(ms);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	for (;;) {
		long long now = clock_mono_ms(), slice;
		struct timespec ts;

		if (cancel_is_set(c)) {
			pthread_mutex_unlock(&c->lock);
			return ERR_CANCELLED;
		}
		if (now >= end)
			break;
		/* In slices, so that a flag set by a signal handler (no
		 * broadcast) is seen soon. */
		slice = end - now < CLOCK_CANCEL_POLL_MS ? end - now : CLOCK_CANCEL_POLL_MS;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(slice / 1000);
		ts.tv_nsec += (long)(slice % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* ---- backoff ---- */

long long backoff_next(struct backoff *b)
{
	long long first = b->first_ms > 0 ? b->first_ms : 1000;
	long long max = b->max_ms > 0 ? b->max_ms : 30000;
	long long w = b->next_ms > 0 ? b->next_ms : first;

	if (w > max)
		w = max;
	b->next_ms = w * 2 > max ? max : w * 2;
	b->tries++;
	if (b->jitter && w > 1) {
		unsigned int rnd = 0;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (unsigned int)clock_mono_ms();
		w = w / 2 + (long long)(rnd % (unsigned int)(w / 2 + 1));
	}
	return w;
}

void backoff_reset(struct backoff *b)
{
	b->next_ms = 0;
	b->tries = 0;
}

int backoff_sleep(struct backoff *b, struct cancel *c)
{
	return clock_sleep_ms(backoff_next(b), c);
}
