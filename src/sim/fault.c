#include "sim/fault.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

enum sim_fault_kind { FK_PROB, FK_SECONDS, FK_COUNT };

static const struct {
	const char *name;
	enum sim_fault_kind kind;
	size_t off;
} sim_fault_table[] = {
	{ "rate_limit", FK_PROB, offsetof(struct sim_faults, rate_limit) },
	{ "server_error", FK_PROB, offsetof(struct sim_faults, server_error) },
	{ "slow", FK_SECONDS, offsetof(struct sim_faults, slow) },
	{ "create_no_contract", FK_PROB, offsetof(struct sim_faults, create_no_contract) },
	{ "create_error_leaves_instance", FK_PROB,
	  offsetof(struct sim_faults, create_error_leaves_instance) },
	{ "offer_taken", FK_PROB, offsetof(struct sim_faults, offer_taken) },
	{ "stuck_loading", FK_PROB, offsetof(struct sim_faults, stuck_loading) },
	{ "instance_exit_after", FK_SECONDS, offsetof(struct sim_faults, instance_exit_after) },
	{ "instance_offline_after", FK_SECONDS,
	  offsetof(struct sim_faults, instance_offline_after) },
	{ "destroy_fail", FK_COUNT, offsetof(struct sim_faults, destroy_fail) },
	{ "list_lag", FK_SECONDS, offsetof(struct sim_faults, list_lag) },
};

#define SIM_NFAULTS (sizeof(sim_fault_table) / sizeof(sim_fault_table[0]))

void sim_faults_init(struct sim_faults *f)
{
	memset(f, 0, sizeof(*f));
	f->instance_exit_after = -1;
	f->instance_offline_after = -1;
}

/* One "name=value" item (not NUL-terminated: `len` bytes at `item`). */
static int sim_fault_item(const char *item, size_t len, struct sim_faults *f, unsigned *seen,
			  struct err *e)
{
	char *text = xstrndup(item, len), *eq, *name, *val, *end;
	unsigned long long count;
	size_t i;
	double d;
	int r = 0;

	name = text;
	while (*name == ' ')
		name++;
	eq = strchr(name, '=');
	if (!eq) {
		r = err_set(e, ERR_USAGE, "--faults item '%s' has no '=value'", name);
		goto out;
	}
	*eq = '\0';
	val = eq + 1;
	for (end = eq; end > name && end[-1] == ' ';)
		*--end = '\0';
	while (*val == ' ')
		val++;
	for (end = val + strlen(val); end > val && end[-1] == ' ';)
		*--end = '\0';
	for (i = 0; i < SIM_NFAULTS; i++)
		if (!strcmp(sim_fault_table[i].name, name))
			break;
	if (i == SIM_NFAULTS) {
		r = err_set(e, ERR_USAGE,
			    "--faults: unknown fault '%s' (known: rate_limit, server_error, slow, "
			    "create_no_contract, create_error_leaves_instance, offer_taken, "
			    "stuck_loading, instance_exit_after, instance_offline_after, "
			    "destroy_fail, list_lag)", name);
		goto out;
	}
	if (*seen & (1u << i)) {
		r = err_set(e, ERR_USAGE, "--faults: '%s' is given twice", name);
		goto out;
	}
	*seen |= 1u << i;
	errno = 0;
	if (sim_fault_table[i].kind == FK_COUNT) {
		count = strtoull(val, &end, 10);
		if (!*val || *val == '-' || *end || errno || count > 1000000) {
			r = err_set(e, ERR_USAGE, "--faults %s=%s: want a count (0 to 1000000)",
				    name, val);
			goto out;
		}
		*(long long *)((char *)f + sim_fault_table[i].off) = (long long)count;
		goto out;
	}
	d = strtod(val, &end);
	if (!*val || *end || errno || !isfinite(d) || d < 0 ||
	    (sim_fault_table[i].kind == FK_PROB && d > 1) ||
	    (sim_fault_table[i].kind == FK_SECONDS && d > 86400.0 * 365)) {
		r = err_set(e, ERR_USAGE, "--faults %s=%s: want %s", name, val,
			    sim_fault_table[i].kind == FK_PROB ? "a probability from 0 to 1"
							       : "a number of seconds, 0 or more");
		goto out;
	}
	*(double *)((char *)f + sim_fault_table[i].off) = d;
out:
	free(text);
	return r;
}

int sim_faults_parse(const char *spec, struct sim_faults *f, struct err *e)
{
	unsigned seen = 0;
	const char *p = spec, *comma;
	int r;

	if (!spec)
		return 0;
	while (*p) {
		comma = strchr(p, ',');
		if (!comma)
			comma = p + strlen(p);
		if (strspn(p, " ") < (size_t)(comma - p)) {
			r = sim_fault_item(p, (size_t)(comma - p), f, &seen, e);
			if (r)
				return r;
		}
		p = *comma ? comma + 1 : comma;
	}
	return 0;
}
