/* `ferry dataset pack` and `unpack`: placeholder until the pack part is built. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_dataset_pack(struct cli *cli, int argc, char **argv)
{
	fprintf(stderr, "ferry: dataset pack is not built yet\n");
	return EXIT_FAILED;
}

int cmd_dataset_unpack(struct cli *cli, int argc, char **argv)
{
	fprintf(stderr, "ferry: dataset unpack is not built yet\n");
	return EXIT_FAILED;
}
