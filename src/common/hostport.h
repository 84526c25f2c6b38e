/* "HOST:PORT" as settings and options write an address: a name or IPv4
 * address before the last colon, an IPv6 address in brackets, or nothing
 * at all (":PORT", every address). */
#ifndef FERRY_HOSTPORT_H
#define FERRY_HOSTPORT_H

#include <stdbool.h>

#include "common/err.h"

/* Parse "host:port", "[v6]:port" or ":port" into *host (caller frees; ""
 * for ":port") and *port (1-65535, or 0 too when port0_ok). On error,
 * *host is NULL and the ERR_USAGE message names `what` (the setting or
 * option, as "--listen") and the bad value. */
int hostport_parse(const char *text, const char *what, bool port0_ok, char **host, int *port,
		   struct err *e);

#endif
