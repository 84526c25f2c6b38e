#include "jobs/state.h"

#include <strings.h>

#include "common/err.h"

static const char *const job_state_names[JOB_STATE_COUNT] = {
	[JOB_QUEUED] = "QUEUED",         [JOB_PREPARING] = "PREPARING",
	[JOB_RENTING] = "RENTING",       [JOB_BOOTING] = "BOOTING",
	[JOB_UPLOADING] = "UPLOADING",   [JOB_TRAINING] = "TRAINING",
	[JOB_COLLECTING] = "COLLECTING", [JOB_PUBLISHING] = "PUBLISHING",
	[JOB_RELEASING] = "RELEASING",   [JOB_RECOVERING] = "RECOVERING",
	[JOB_SUCCEEDED] = "SUCCEEDED",   [JOB_FAILED] = "FAILED",
	[JOB_CANCELLED] = "CANCELLED",
};

const char *job_state_name(enum job_state s)
{
	return (unsigned)s < JOB_STATE_COUNT ? job_state_names[s] : "?";
}

int job_state_parse(const char *name, enum job_state *out)
{
	for (int i = 0; name && i < JOB_STATE_COUNT; i++) {
		if (!strcasecmp(name, job_state_names[i])) {
			*out = (enum job_state)i;
			return 0;
		}
	}
	return ERR_USAGE;
}

bool job_state_terminal(enum job_state s)
{
	return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

enum job_state job_state_next(enum job_state s)
{
	if (s == JOB_RECOVERING)
		return JOB_RENTING;
	if (s == JOB_RELEASING)
		return JOB_SUCCEEDED;
	return s < JOB_RELEASING ? s + 1 : s;
}

bool job_state_holds_instance(enum job_state s)
{
	return s >= JOB_RENTING && s <= JOB_RECOVERING;
}

bool job_state_can_move(enum job_state from, enum job_state to)
{
	if ((unsigned)from >= JOB_STATE_COUNT || (unsigned)to >= JOB_STATE_COUNT || from == to)
		return false;
	if (job_state_terminal(from))
		return to == JOB_QUEUED && from != JOB_SUCCEEDED;
	switch (to) {
	case JOB_RELEASING:
		return true; /* every running state can end */
	case JOB_RECOVERING:
		return from == JOB_BOOTING || from == JOB_UPLOADING || from == JOB_TRAINING;
	case JOB_RENTING:
		return from == JOB_PREPARING || from == JOB_RECOVERING;
	case JOB_COLLECTING:
		return from == JOB_TRAINING;
	case JOB_SUCCEEDED:
	case JOB_FAILED:
		return from == JOB_RELEASING;
	case JOB_CANCELLED:
		return from == JOB_RELEASING || from == JOB_QUEUED;
	default:
		/* The steps in order. */
		return from < JOB_RELEASING && to == from + 1;
	}
}
