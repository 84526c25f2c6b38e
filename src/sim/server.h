/* `ferry sim`'s HTTP side, on common/httpd (one thread per connection): the
 * routes of the Vast API (vast-api.md) plus /sim/ledger, authentication,
 * and the request faults; the state lives in sim/world.h. */
#ifndef FERRY_SIM_SERVER_H
#define FERRY_SIM_SERVER_H

#include "common/err.h"
#include "sim/world.h"

struct sim_server;

struct sim_server_opts {
	const char *host;         /* an address: 127.0.0.1, ::1, localhost */
	int port;                 /* 0: any free port */
	const char *api_key;      /* the one valid key; NULL: any non-empty key */
	struct sim_world *world;  /* not owned */
};

/* --listen's "HOST:PORT" or "[V6]:PORT" (common/hostport.h; a host is
 * required) into *host (caller frees) and *port (0-65535). */
int sim_listen_parse(const char *text, char **host, int *port, struct err *e);

/* Bind, listen and serve in background threads until sim_server_stop. */
int sim_server_start(const struct sim_server_opts *o, struct sim_server **out, struct err *e);
/* The port actually bound. */
int sim_server_port(const struct sim_server *s);
/* Stop serving (waits for the threads) and free. */
void sim_server_stop(struct sim_server *s);

#endif
