#include "jobs/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "jobs/queue.h"
#include "jobs/run.h"

/* One job thread. The main thread owns the slot; the job thread writes
 * only `lease` (through job_run) and, last, `done`. */
struct worker_slot {
	bool used;
	atomic_bool done;
	pthread_t thread;
	const struct worker_opts *o;
	struct job_lease lease;    /* the job thread's */
	struct job_lease renewal;  /* the main thread's copy, which it renews */
	struct cancel stop;        /* this job's cancel; parent: the drain */
	long long renewed_ms;
};

static void *worker_job_main(void *arg)
{
	struct worker_slot *s = arg;
	const struct worker_opts *o = s->o;
	struct queue *q = NULL;
	struct err e = { 0 };
	int r = queue_open(&q, o->queue, &e);

	if (!r) {
		struct job_run_opts ro = { .q = q, .cfg = o->cfg, .steps = o->steps,
					   .drain = o->drain, .stop = &s->stop,
					   .lease_s = o->lease_s,
					   .release_first_ms = o->release_first_ms,
					   .release_max_ms = o->release_max_ms };

		r = job_run(&ro, &s->lease, &e);
	}
	if (r && r != ERR_CANCELLED)
		log_error("job %s: %s", s->lease.job, e.msg);
	queue_close(q);
	atomic_store(&s->done, true);
	return NULL;
}

static int worker_start(struct worker_slot *s, const struct worker_opts *o,
			const struct job_lease *l, struct err *e)
{
	memset(s, 0, sizeof(*s));
	s->o = o;
	s->lease = s->renewal = *l;
	s->renewed_ms = clock_mono_ms();
	atomic_init(&s->done, false);
	cancel_init_child(&s->stop, o->drain);
	if (pthread_create(&s->thread, NULL, worker_job_main, s)) {
		cancel_release(&s->stop);
		return err_set(e, ERR_FAIL, "job %s: cannot start a thread for it", l->job);
	}
	s->used = true;
	log_info("job %s: taken up (lease %lld)", l->job, l->fence);
	return 0;
}

static void worker_join(struct worker_slot *s)
{
	pthread_join(s->thread, NULL);
	cancel_release(&s->stop);
	s->used = false;
}

/* Keep a running job's lease alive, and carry a cancel asked in the queue
 * to its waits (RELEASING, which carries the cancel out, excepted). */
static void worker_watch(struct queue *q, struct worker_slot *s, int lease_s)
{
	struct queue_job j = { 0 };
	struct err e = { 0 };
	long long now = clock_mono_ms();

	if (now - s->renewed_ms >= (long long)lease_s * 1000 / 3) {
		if (q->ops->renew(q, &s->renewal, lease_s, &e))
			log_warn("job %s: renewing its lease: %s", s->renewal.job, e.msg);
		s->renewed_ms = now;
	}
	if (q->ops->get(q, s->renewal.job, &j, &e))
		return;
	if (j.cancel_requested && j.state != JOB_RELEASING && !cancel_is_set(&s->stop))
		cancel_set(&s->stop);
	queue_job_release(&j);
}

/* Whether `owner` names a worker of this host ("HOST:PID") that is gone. */
static bool worker_dead(const char *owner, const char *host)
{
	const char *colon = strrchr(owner, ':');
	long long pid;

	if (!colon || (size_t)(colon - owner) != strlen(host) || strncmp(owner, host, strlen(host)) ||
	    str_to_i64(colon + 1, &pid) || pid <= 0 || pid == (long long)getpid())
		return false;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* A worker of this host that died (killed, the machine restarted) left its
 * jobs under leases that would hold them for up to a lease's length: take
 * them at once, so a restart carries on where the dead worker stopped. */
static void worker_take_dead(struct queue *q, const char *host)
{
	struct queue_filter f = { 0 };
	struct queue_job *v = NULL;
	size_t n = 0;
	struct err e = { 0 };

	if (q->ops->list(q, &f, &v, &n, &e)) {
		log_warn("worker: looking for jobs of dead workers: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].lease_owner[0] || !worker_dead(v[i].lease_owner, host))
			continue;
		if (q->ops->abandon(q, v[i].id, v[i].lease_owner, &e))
			log_warn("job %s: %s", v[i].id, e.msg);
		else
			log_info("job %s: its worker %s is gone; taking it up", v[i].id,
				 v[i].lease_owner);
	}
	queue_jobs_free(v, n);
}

/* Claim jobs into free slots: 0, with *none when nothing was runnable. */
static int worker_fill(struct queue *q, struct worker_slot *slots, int n,
		       const struct worker_opts *o, const char *owner, int lease_s, bool *none,
		       struct err *e)
{
	*none = false;
	for (int i = 0; i < n && !cancel_is_set(o->drain); i++) {
		struct job_lease l;
		int r;

		if (slots[i].used)
			continue;
		r = q->ops->claim(q, NULL, owner, lease_s, &l, e);
		if (r == ERR_NOTFOUND) {
			*none = true;
			return 0;
		}
		if (!r)
			r = worker_start(&slots[i], o, &l, e);
		if (r)
			return r;
	}
	return 0;
}

int worker_run(const struct worker_opts *o, struct err *e)
{
	int n = o->parallel > 0 ? o->parallel : 1;
	int lease_s = o->lease_s > 0 ? o->lease_s : 60;
	long long poll_ms = o->poll_ms > 0 ? o->poll_ms : 1000;
	struct worker_slot *slots = xcalloc((size_t)n, sizeof(*slots));
	struct worker_opts own = *o;
	struct queue *q = NULL;
	char owner[128], host[64] = "localhost";
	int r;

	gethostname(host, sizeof(host) - 1);
	snprintf(owner, sizeof(owner), "%s:%ld", host, (long)getpid());
	own.owner = o->owner ? o->owner : owner;
	own.lease_s = lease_s;
	r = queue_open(&q, o->queue, e);
	if (!r)
		worker_take_dead(q, host);
	while (!r && !cancel_is_set(o->drain)) {
		struct err fe = { 0 };
		bool none;
		int running = 0;

		for (int i = 0; i < n; i++)
			if (slots[i].used && atomic_load(&slots[i].done))
				worker_join(&slots[i]);
		if (worker_fill(q, slots, n, &own, own.owner, lease_s, &none, &fe))
			log_warn("worker: taking up jobs: %s", fe.msg); /* again next turn */
		for (int i = 0; i < n; i++) {
			if (!slots[i].used)
				continue;
			running++;
			if (!atomic_load(&slots[i].done))
				worker_watch(q, &slots[i], lease_s);
		}
		if (o->once && none && !running)
			break;
		clock_sleep_ms(poll_ms, o->drain);
	}
	if (cancel_is_set(o->drain))
		log_info("worker: stopping; the jobs it ran keep their state");
	for (int i = 0; i < n; i++)
		if (slots[i].used)
			worker_join(&slots[i]);
	queue_close(q);
	free(slots);
	return r;
}
