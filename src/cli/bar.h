/* The one progress bar: drawn on stderr, and only when it is a terminal.
 * Parts report progress through common/progress; this draws it. */
#ifndef FERRY_CLI_BAR_H
#define FERRY_CLI_BAR_H

#include <stdbool.h>
#include <stdint.h>

#include "common/progress.h"

struct cli_bar {
	bool on, drawn;
	long long t0;
	const char *label;       /* shown before the phase; may be NULL */
	struct progress pg;      /* hand &bar.pg to the part */
};

/* On when stderr is a terminal. */
void cli_bar_init(struct cli_bar *b, const char *label);
/* Start timing afresh (a new file). */
void cli_bar_restart(struct cli_bar *b, const char *label);
/* Clear the bar's line, if one was drawn. */
void cli_bar_end(struct cli_bar *b);

#endif
