/* placeholder until written */
#include "cli/cli.h"
#include <stdio.h>
const char cmd_keys_usage[] = "usage: ferry keys (not built yet)\n";
int cmd_keys(struct cli *cli, int argc, char **argv) { fputs("ferry: keys is not built yet\n", stderr); return EXIT_FAILED; }
const char cmd_whoami_usage[] = "usage: ferry whoami (not built yet)\n";
int cmd_whoami(struct cli *cli, int argc, char **argv) { fputs("ferry: whoami is not built yet\n", stderr); return EXIT_FAILED; }
