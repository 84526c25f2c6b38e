/* Typed, defensive readers for Vast's offer and instance JSON
 * (vast-api.md sections 3 and 5). Readers never trust a field's type:
 * numbers may arrive as numeric strings, booleans as 0/1 or "true", any
 * field may be null or missing (it then reads as 0, NULL or false) and
 * unknown fields are ignored. Only a missing id makes an object unusable. */
#ifndef FERRY_VAST_MODEL_H
#define FERRY_VAST_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* A lenient boolean: true/false, a number (non-zero is true), or the
 * strings "true"/"false"/"yes"/"no" or a numeric string. */
bool vast_json_bool(const json_t *v, bool *out);
/* A positive id: an integer or an integer string; 0 for anything else. */
long long vast_json_id(const json_t *v);

/* One rentable offer, as /bundles/ lists it. Strings are owned (NULL when
 * absent); units are the server's. */
struct vast_offer {
	long long id;            /* offer id for PUT /asks/{id}/ */
	long long machine_id;
	long long host_id;
	char *gpu_name;          /* "RTX 4090" */
	int num_gpus;
	double gpu_ram;          /* MB per GPU (24 GB card: 24564) */
	double gpu_total_ram;    /* MB */
	double gpu_frac;
	double cpu_ram;          /* MB, host total */
	int cpu_cores;           /* host total */
	double cpu_cores_effective; /* our share */
	double disk_space;       /* GB */
	double disk_bw;          /* MB/s */
	double dph_total;        /* $/hr, dph_base + storage */
	double dph_base;         /* $/hr */
	double storage_cost;     /* $/GB/month */
	double inet_up_cost;     /* $/GB */
	double inet_down_cost;   /* $/GB */
	double min_bid;          /* $/hr, interruptible floor */
	double inet_down;        /* Mb/s */
	double inet_up;          /* Mb/s */
	double reliability;      /* reliability (what the filter reads), else reliability2 */
	double dlperf;
	double dlperf_per_dphtotal;
	double total_flops;
	double score;
	double cuda_max_good;    /* 12.2 */
	char *driver_version;    /* "535.183.01", as sent */
	int compute_cap;         /* x100: 890 */
	int direct_port_count;
	int hosting_type;        /* 1: datacenter */
	double duration;         /* seconds until the listing ends */
	bool verified;           /* "verified", else verification == "verified" */
	bool rentable;
	bool rented;
	bool static_ip;
	bool external;
	char *verification;      /* "verified", "unverified", ... */
	char *geolocation;       /* "Guangxi, CN" */
	char *public_ipaddr;     /* whitespace trimmed */
};

/* Fill `out` from one offer object. Fails (ERR_FORMAT) only if `obj` is not
 * an object or has no usable positive "id"; `out` is then zeroed. */
int vast_offer_read(const json_t *obj, struct vast_offer *out, struct err *e);
void vast_offer_release(struct vast_offer *o);

/* Read {"offers":[...]} into a new array (*out, *n; NULL and 0 when empty).
 * Elements that cannot be read are skipped with a warning. Fails
 * (ERR_FORMAT) only if "offers" is missing or not an array. */
int vast_offers_read(const json_t *answer, struct vast_offer **out, size_t *n, struct err *e);
/* The same from the answer's bytes, without building the whole document:
 * the "offers" array is split into its elements, which `threads` threads
 * (0: one per core, at most 8) parse and read one at a time, so memory
 * stays near the answer's size and a 10,000-offer answer reads in a
 * fraction of the time. Other top-level members are skipped unparsed. A
 * malformed element, a truncated answer or a NUL byte is ERR_FORMAT. */
int vast_offers_read_bytes(const char *data, size_t len, int threads, struct vast_offer **out,
			   size_t *n, struct err *e);
void vast_offers_free(struct vast_offer *v, size_t n);

/* One rented instance. actual_status is NULL while being provisioned. */
struct vast_instance {
	long long id;            /* new_contract, not the offer id */
	long long machine_id;
	long long host_id;
	char *label;
	char *actual_status;     /* NULL | created | loading | running | ... */
	char *intended_status;   /* running | stopped | frozen */
	char *cur_state;         /* running | stopped | unloaded */
	char *next_state;
	char *status_msg;
	char *image_runtype;     /* "ssh_direc ssh_proxy" */
	char *gpu_name;
	int num_gpus;
	char *public_ipaddr;     /* whitespace trimmed; NULL when empty */
	char *ssh_host;          /* proxy: sshN.vast.ai */
	int ssh_port;            /* proxy port; 0 when absent or out of range */
	int ssh_direct_port;     /* HostPort of ports["22/tcp"][0]; 0 when none */
	int direct_port_count;
	int direct_port_start;
	int direct_port_end;
	double dph_total;        /* $/hr */
	double min_bid;
	bool is_bid;
	double start_date;       /* epoch seconds */
	double end_date;
	double duration;
};

/* Fill `out` from one instance object. Fails (ERR_FORMAT) only if `obj` is
 * not an object or has no usable positive "id"; `out` is then zeroed. */
int vast_instance_read(const json_t *obj, struct vast_instance *out, struct err *e);
/* Read GET /instances/{id}/'s reply {"instances": {...}|null}: ERR_NOTFOUND
 * when the value is null or missing, ERR_FORMAT when it is something else. */
int vast_instance_read_answer(const json_t *answer, struct vast_instance *out, struct err *e);
void vast_instance_release(struct vast_instance *in);

/* Read one page of GET /api/v1/instances/ ({"instances":[...],
 * "next_token":...}) and append its instances to (*v, *n). *next_token is a
 * new string, or NULL on the last page. Unreadable elements are skipped
 * with a warning; ERR_FORMAT when "instances" is not an array. */
int vast_instances_read_page(const json_t *answer, struct vast_instance **v, size_t *n,
			     char **next_token, struct err *e);
void vast_instances_free(struct vast_instance *v, size_t n);

/* The account, from GET /users/current/. */
struct vast_user {
	long long id;
	char *username;
	char *email;
	double balance;   /* $ */
	double credit;    /* $ */
	bool has_billing;
	bool can_pay;
};
int vast_user_read(const json_t *obj, struct vast_user *out, struct err *e);
void vast_user_release(struct vast_user *u);

/* One SSH key registered on the account (GET /ssh/ lists them). */
struct vast_ssh_key {
	long long id;
	char *key;        /* "ssh-ed25519 AAAA... comment", trimmed */
};
/* Read GET /ssh/'s array (or {"keys":[...]} / {"ssh_keys":[...]}); keys
 * marked deleted are left out. */
int vast_ssh_keys_read(const json_t *answer, struct vast_ssh_key **out, size_t *n, struct err *e);
void vast_ssh_keys_free(struct vast_ssh_key *v, size_t n);
/* Whether two public keys are the same key: type and base64 body equal,
 * comments ignored. */
bool vast_ssh_key_same(const char *a, const char *b);

/* Where to ssh: public_ipaddr with the host port mapped to 22/tcp (direct)
 * when both exist, else ssh_host:ssh_port (proxy; +1 when image_runtype
 * names jupyter, as the vastai CLI does), else ERR_NOTFOUND "no SSH endpoint
 * yet". *host is a new string the caller frees. */
int vast_instance_ssh_endpoint(const struct vast_instance *in, char **host, int *port,
			       bool *direct, struct err *e);

#endif
