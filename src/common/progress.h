/* Progress of a long operation (a push, a pull, a pack, a store transfer),
 * reported to whoever runs it: cli/ draws a bar on a terminal, jobs/ turns
 * it into events. A part never draws on a terminal itself. */
#ifndef FERRY_PROGRESS_H
#define FERRY_PROGRESS_H

#include <stdint.h>

/* `phase` names the stage ("hashing", "uploading", "downloading",
 * "checking", "packing"); `done` of `total` bytes (total 0: unknown). */
struct progress {
	void (*fn)(void *arg, const char *phase, uint64_t done, uint64_t total);
	void *arg;
};

/* Report to `p`; a NULL `p` or one without fn takes nothing. */
void progress_report(const struct progress *p, const char *phase, uint64_t done,
		     uint64_t total);

#endif
