/* `ferry sim`: serve a simulated Vast.ai API until SIGINT or SIGTERM. */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hostport.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "sim/fault.h"
#include "sim/market.h"
#include "sim/server.h"
#include "sim/world.h"

const char cmd_sim_usage[] =
	"usage: ferry sim [--listen HOST:PORT] [--market FILE] [--ssh-endpoint HOST:PORT]\n"
	"                 [--boot-seconds N] [--api-key KEY] [--faults SPEC] [--seed N]\n"
	"                 [--offers N] [--rate N]\n"
	"\n"
	"Serve a simulated Vast.ai REST API on loopback, for rehearsals and tests:\n"
	"offer search, create, instances that boot on the wall clock, SSH keys,\n"
	"billing, rate limits and injected faults. Prints one line,\n"
	"'ferry sim: listening on http://HOST:PORT', then serves until SIGINT or\n"
	"SIGTERM. GET /sim/ledger shows every instance and what it cost.\n"
	"Point ferry at it with VAST_URL=http://HOST:PORT. See docs/sim.md.\n"
	"\n"
	"  --listen HOST:PORT     where to listen (default 127.0.0.1:0, any free port)\n"
	"  --market FILE          serve the offers of FILE ({\"offers\":[...]} or a JSON\n"
	"                         array) as they are, instead of the built-in market\n"
	"  --ssh-endpoint H:P     the SSH endpoint every instance reports\n"
	"                         (default 127.0.0.1:22)\n"
	"  --boot-seconds N       seconds from create to running (default 5)\n"
	"  --api-key KEY          the only valid key (default: any non-empty key)\n"
	"  --faults SPEC          faults to inject, 'name=value,...': rate_limit,\n"
	"                         server_error, create_no_contract,\n"
	"                         create_error_leaves_instance, offer_taken,\n"
	"                         stuck_loading (probabilities 0..1); slow,\n"
	"                         instance_exit_after, instance_offline_after,\n"
	"                         list_lag (seconds); destroy_fail (count)\n"
	"  --seed N               seed of the market, the faults and the ids (default 1)\n"
	"  --offers N             offers in the built-in market (default 300)\n"
	"  --rate N               requests a second per key and endpoint before 429\n"
	"                         (default 20; 0: no limit)\n";

static void sim_on_signal(int sig)
{
	(void)sig;
}

static int sim_double(const char *opt, const char *value, double max, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(value, &end);
	if (!*value || *end || errno || !isfinite(d) || d < 0 || d > max) {
		fprintf(stderr, "ferry sim: %s wants a number from 0 to %g, not '%s'\n", opt, max, value);
		return -1;
	}
	*out = d;
	return 0;
}

int cmd_sim(struct cli *cli, int argc, char **argv)
{
	enum { O_LISTEN = 256, O_MARKET, O_SSH, O_BOOT, O_KEY, O_FAULTS, O_SEED, O_OFFERS, O_RATE };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "market", required_argument, NULL, O_MARKET },
		{ "ssh-endpoint", required_argument, NULL, O_SSH },
		{ "boot-seconds", required_argument, NULL, O_BOOT },
		{ "api-key", required_argument, NULL, O_KEY },
		{ "faults", required_argument, NULL, O_FAULTS },
		{ "seed", required_argument, NULL, O_SEED },
		{ "offers", required_argument, NULL, O_OFFERS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = "127.0.0.1:0", *market_path = NULL, *ssh = "127.0.0.1:22";
	const char *api_key = NULL, *faults = NULL;
	unsigned long long seed = 1, offers = 300;
	struct sim_world_opts wo = { 0 };
	struct sim_server_opts so = { 0 };
	struct sim_server *server = NULL;
	struct sim_world *world = NULL;
	struct sigaction sa;
	sigset_t sigs;
	char *host = NULL, *ssh_host = NULL;
	int c, port = 0, ssh_port = 0, sig, status = EXIT_FAILED;
	struct err e = { 0 };

	wo.boot_seconds = 5;
	wo.rate = 20;
	wo.credit = 25.0;
	sim_faults_init(&wo.faults);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: listen = optarg; break;
		case O_MARKET: market_path = optarg; break;
		case O_SSH: ssh = optarg; break;
		case O_BOOT:
			if (sim_double("--boot-seconds", optarg, 86400, &wo.boot_seconds))
				return EXIT_USAGE;
			break;
		case O_KEY:
			if (!*optarg)
				return cli_usage("sim", "--api-key must not be empty");
			api_key = optarg;
			log_register_secret(optarg);
			break;
		case O_FAULTS: faults = optarg; break;
		case O_SEED:
			if (cli_uint("--seed", optarg, &seed))
				return EXIT_USAGE;
			break;
		case O_OFFERS:
			if (cli_uint("--offers", optarg, &offers))
				return EXIT_USAGE;
			if (offers > 100000)
				return cli_usage("sim", "--offers %llu: at most 100000", offers);
			break;
		case O_RATE:
			if (sim_double("--rate", optarg, 1e6, &wo.rate))
				return EXIT_USAGE;
			break;
		case 'h': fputs(cmd_sim_usage, stdout); return EXIT_OK;
		default: return cli_usage("sim", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage("sim", "unexpected argument '%s'", argv[optind]);
	if (sim_listen_parse(listen, &host, &port, &e) ||
	    hostport_parse(ssh, "--ssh-endpoint", false, &ssh_host, &ssh_port, &e) ||
	    sim_faults_parse(faults, &wo.faults, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (!*ssh_host) {
		status = cli_usage("sim", "--ssh-endpoint '%s': name the host, as 127.0.0.1%s", ssh, ssh);
		goto out;
	}
	if (market_path) {
		if (sim_market_load(market_path, &wo.market, &e)) {
			e.code = ERR_USAGE;
			status = cli_fail(&e);
			goto out;
		}
	} else {
		wo.market = sim_market_generate(seed, (size_t)offers);
		wo.reprice = true;
	}
	wo.ssh_host = ssh_host;
	wo.ssh_port = ssh_port;
	wo.seed = seed;
	world = sim_world_new(&wo);

	/* SIGINT and SIGTERM are taken by sigwait below; every server thread
	 * inherits the mask. A handler (not SIG_IGN, which a background shell
	 * job may have inherited) lets them become pending. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sim_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	so.host = host;
	so.port = port;
	so.api_key = api_key;
	so.world = world;
	if (sim_server_start(&so, &server, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	log_info("sim: %zu offers%s, boot %gs, ssh endpoint %s:%d, rate %g/s", json_array_size(wo.market),
		 market_path ? " from the market file" : "", wo.boot_seconds, ssh_host, ssh_port, wo.rate);
	printf("ferry sim: listening on http://%s%s%s:%d\n", strchr(host, ':') ? "[" : "", host,
	       strchr(host, ':') ? "]" : "", sim_server_port(server));
	fflush(stdout);
	do {
		sig = 0;
	} while (sigwait(&sigs, &sig) || (sig != SIGINT && sig != SIGTERM));
	log_info("sim: signal %d, stopping", sig);
	status = EXIT_OK;
out:
	sim_server_stop(server);
	sim_world_free(world);
	json_decref(wo.market);
	free(host);
	free(ssh_host);
	return status;
}
