/* placeholder until written */
#include "cli/cli.h"
#include <stdio.h>
const char cmd_rent_usage[] = "usage: ferry rent (not built yet)\n";
int cmd_rent(struct cli *cli, int argc, char **argv) { fputs("ferry: rent is not built yet\n", stderr); return EXIT_FAILED; }
const char cmd_instances_usage[] = "usage: ferry instances (not built yet)\n";
int cmd_instances(struct cli *cli, int argc, char **argv) { fputs("ferry: instances is not built yet\n", stderr); return EXIT_FAILED; }
const char cmd_destroy_usage[] = "usage: ferry destroy (not built yet)\n";
int cmd_destroy(struct cli *cli, int argc, char **argv) { fputs("ferry: destroy is not built yet\n", stderr); return EXIT_FAILED; }
