#include "jobs/budget.h"

#include <stdio.h>

double job_cost_usd(const struct queue_instance *v, size_t n, long long now)
{
	double usd = 0;

	for (size_t i = 0; i < n; i++) {
		long long end = v[i].destroyed_at ? v[i].destroyed_at : now;

		if (v[i].created_at && end > v[i].created_at)
			usd += v[i].dph * (double)(end - v[i].created_at) / 3600.0;
	}
	return usd;
}

double job_cost_rate(const struct queue_instance *v, size_t n)
{
	double dph = 0;

	for (size_t i = 0; i < n; i++)
		if (v[i].created_at && !v[i].destroyed_at)
			dph += v[i].dph;
	return dph;
}

static double job_reserve_s(const struct job_budget *b)
{
	return b->reserve_s > 0 ? b->reserve_s : JOB_BUDGET_RESERVE_S;
}

bool job_budget_exceeded(const struct job_budget *b, char *why, size_t n)
{
	double reserve = job_reserve_s(b);
	double usd = b->spent_usd + b->dph * reserve / 3600.0;

	if (b->max_usd > 0 && usd >= b->max_usd) {
		snprintf(why, n, "$%.2f spent of the $%.2f limit, and about $%.2f more needed to "
			 "collect, publish and release", b->spent_usd, b->max_usd,
			 b->dph * reserve / 3600.0);
		return true;
	}
	if (b->max_hours > 0 && b->elapsed_s + reserve >= b->max_hours * 3600.0) {
		snprintf(why, n, "%.2f h run of the %.2f h limit, and about %.0f s more needed to "
			 "collect, publish and release", b->elapsed_s / 3600.0, b->max_hours,
			 reserve);
		return true;
	}
	return false;
}

bool job_budget_allows(const struct job_budget *b, double est_usd, double est_s)
{
	double reserve = job_reserve_s(b);

	if (b->max_usd > 0 &&
	    b->spent_usd + est_usd + b->dph * reserve / 3600.0 > b->max_usd)
		return false;
	return !(b->max_hours > 0 && b->elapsed_s + est_s + reserve > b->max_hours * 3600.0);
}
