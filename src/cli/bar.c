#include "cli/bar.h"

#include <stdio.h>
#include <unistd.h>

#include "common/clock.h"

static void cli_bar_draw(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct cli_bar *b = arg;
	double secs = (double)(clock_mono_ms() - b->t0 + 1) / 1000.0;

	if (!b->on)
		return;
	fprintf(stderr, "\r\033[K%s%s%-11s %5.1f%%  %8.1f of %.1f MiB  %6.1f MiB/s",
		b->label ? b->label : "", b->label ? " " : "", phase,
		total ? 100.0 * (double)done / (double)total : 100.0, (double)done / 1048576.0,
		(double)total / 1048576.0, (double)done / 1048576.0 / secs);
	b->drawn = true;
}

void cli_bar_init(struct cli_bar *b, const char *label)
{
	b->on = isatty(2);
	b->drawn = false;
	b->t0 = clock_mono_ms();
	b->label = label;
	b->pg.fn = cli_bar_draw;
	b->pg.arg = b;
}

void cli_bar_restart(struct cli_bar *b, const char *label)
{
	b->label = label;
	b->t0 = clock_mono_ms();
}

void cli_bar_end(struct cli_bar *b)
{
	if (b->drawn)
		fputs("\r\033[K", stderr);
	b->drawn = false;
}
