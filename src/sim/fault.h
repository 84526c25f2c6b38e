/* Faults `ferry sim --faults` injects: what each one does is in docs/sim.md.
 * Probabilities are per call and drawn from the world's seeded generator. */
#ifndef FERRY_SIM_FAULT_H
#define FERRY_SIM_FAULT_H

#include "common/err.h"

struct sim_faults {
	double rate_limit;                   /* probability: 429 text/plain */
	double server_error;                 /* probability: 502/503/504 */
	double slow;                         /* seconds added to every call */
	double create_no_contract;           /* probability: {"success":true}, no id */
	double create_error_leaves_instance; /* probability: an error, yet created */
	double offer_taken;                  /* probability: 404 no_such_ask */
	double stuck_loading;                /* probability per create */
	double instance_exit_after;          /* seconds running, then exited; < 0 off */
	double instance_offline_after;       /* seconds running, then offline; < 0 off */
	long long destroy_fail;              /* first N destroys of each instance fail */
	double list_lag;                     /* seconds a new instance is unlisted */
};

/* All faults off. */
void sim_faults_init(struct sim_faults *f);
/* Parse "name=value,name=value" over `f` (which the caller initialised).
 * ERR_USAGE names the offending item; `f` may then be partly set. */
int sim_faults_parse(const char *spec, struct sim_faults *f, struct err *e);

#endif
