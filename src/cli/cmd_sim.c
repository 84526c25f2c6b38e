/* placeholder until written */
#include "cli/cli.h"
#include <stdio.h>
const char cmd_sim_usage[] = "usage: ferry sim (not built yet)\n";
int cmd_sim(struct cli *cli, int argc, char **argv) { fputs("ferry: sim is not built yet\n", stderr); return EXIT_FAILED; }
