/* placeholder until written */
#include "cli/cli.h"
#include <stdio.h>
const char cmd_offers_usage[] = "usage: ferry offers (not built yet)\n";
int cmd_offers(struct cli *cli, int argc, char **argv) { fputs("ferry: offers is not built yet\n", stderr); return EXIT_FAILED; }
