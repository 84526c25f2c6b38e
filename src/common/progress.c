#include "progress.h"

#include <stddef.h>

void progress_report(const struct progress *p, const char *phase, uint64_t done,
		     uint64_t total)
{
	if (p && p->fn)
		p->fn(p->arg, phase, done, total);
}
