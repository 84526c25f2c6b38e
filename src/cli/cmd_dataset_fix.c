/* `ferry dataset fix`: placeholder until the fix part is built. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_dataset_fix(struct cli *cli, int argc, char **argv)
{
	fprintf(stderr, "ferry: dataset fix is not built yet\n");
	return EXIT_FAILED;
}
