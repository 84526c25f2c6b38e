/* libFuzzer target for the Vast offer and instance readers: any JSON must be
 * read or refused with a message, never crash or leak, and whatever is read
 * must hold sane values. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "common/log.h"
#include "vast/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_instance(const struct vast_instance *in)
{
	struct err e;
	char *host = NULL;
	int port = 0, r;
	bool direct = false;

	if (in->id <= 0 || in->ssh_port < 0 || in->ssh_port > 65535 ||
	    in->ssh_direct_port < 0 || in->ssh_direct_port > 65535)
		abort();
	err_clear(&e);
	r = vast_instance_ssh_endpoint(in, &host, &port, &direct, &e);
	if (r) {
		if (host || !e.msg[0] || e.code != r)
			abort();
	} else {
		if (!host || !*host || port < 1 || port > 65535)
			abort();
		free(host);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vast_offer *offers = NULL, o;
	struct vast_instance in;
	json_error_t je;
	struct err e;
	size_t n = 0;
	json_t *v;

	log_set_level(LOG_ERROR);
	/* The bytes reader must accept whatever the whole-document reader
	 * accepts, with the same offers in the same order. */
	{
		struct vast_offer *b = NULL;
		size_t nb = 0;
		int rb;

		err_clear(&e);
		rb = vast_offers_read_bytes((const char *)data, size, 2, &b, &nb, &e);
		json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);

		if (rb && (b || nb || !e.msg[0]))
			abort();
		/* (A NUL byte is refused on purpose; jansson reads past it.) */
		if (doc && !memchr(data, 0, size) && !vast_offers_read(doc, &offers, &n, &e)) {
			if (rb || nb != n)
				abort();
			for (size_t i = 0; i < n; i++)
				if (offers[i].id != b[i].id)
					abort();
			vast_offers_free(offers, n);
			offers = NULL;
			n = 0;
		}
		vast_offers_free(b, nb);
		json_decref(doc);
	}
	v = json_loadb((const char *)data, size, 0, &je);
	if (!v)
		return 0;

	err_clear(&e);
	if (!vast_offers_read(v, &offers, &n, &e)) {
		for (size_t i = 0; i < n; i++)
			if (offers[i].id <= 0)
				abort();
		vast_offers_free(offers, n);
	} else if (offers || n || !e.msg[0]) {
		abort();
	}

	err_clear(&e);
	if (!vast_offer_read(v, &o, &e)) {
		if (o.id <= 0)
			abort();
		vast_offer_release(&o);
	} else if (o.gpu_name || !e.msg[0]) {
		abort();
	}

	err_clear(&e);
	if (!vast_instance_read(v, &in, &e)) {
		check_instance(&in);
		vast_instance_release(&in);
	} else if (in.label || !e.msg[0]) {
		abort();
	}

	err_clear(&e);
	if (!vast_instance_read_answer(v, &in, &e)) {
		check_instance(&in);
		vast_instance_release(&in);
	}

	/* A v1 list page, its next_token, the account and its SSH keys. */
	{
		struct vast_instance *list = NULL;
		struct vast_ssh_key *keys = NULL;
		struct vast_user u;
		char *token = NULL;
		size_t nl = 0, nk = 0;

		err_clear(&e);
		if (!vast_instances_read_page(v, &list, &nl, &token, &e)) {
			for (size_t i = 0; i < nl; i++)
				check_instance(&list[i]);
			if (token && !*token)
				abort();
		} else if (nl || token || !e.msg[0]) {
			abort();
		}
		vast_instances_free(list, nl);
		free(token);
		err_clear(&e);
		if (!vast_ssh_keys_read(v, &keys, &nk, &e)) {
			for (size_t i = 0; i < nk; i++)
				if (!keys[i].key || !*keys[i].key ||
				    !vast_ssh_key_same(keys[i].key, keys[i].key))
					abort();
			vast_ssh_keys_free(keys, nk);
		} else if (keys || nk || !e.msg[0]) {
			abort();
		}
		if (!vast_user_read(v, &u, &e))
			vast_user_release(&u);
	}

	json_decref(v);
	return 0;
}
