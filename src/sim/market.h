/* The simulated market: a built-in set of offers generated from a seed, or
 * offers loaded verbatim from a file, and the per-answer pricing /bundles/
 * applies (allocated storage, on-demand or bid). */
#ifndef FERRY_SIM_MARKET_H
#define FERRY_SIM_MARKET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The epoch second the built-in market is dated at (2026-01-01 00:00 UTC):
 * start_date, end_date and duration are fixed relative to it, so the same
 * seed gives the same bytes whenever it runs. */
#define SIM_MARKET_EPOCH 1767225600.0

/* `n` offers from `seed`, every field of vast-api.md section 3, priced for
 * 5 GB on demand. A new array the caller owns. */
json_t *sim_market_generate(uint64_t seed, size_t n);

/* Read a market file: {"offers":[...]} or a bare array, kept as it is.
 * ERR_IO when it cannot be read, ERR_FORMAT (with the JSON error's line
 * and column) when it is not one of those shapes. */
int sim_market_load(const char *path, json_t **out, struct err *e);

/* Set an offer's derived prices for `storage_gb` of allocated storage and,
 * when `bid`, the interruptible price min_bid instead of dph_base:
 * dph_total, storage_total_cost, the per-dollar figures, search{} and
 * instance{}. An offer whose dph_base, min_bid or storage_cost is not a
 * number is left as it is. */
void sim_market_price(json_t *offer, double storage_gb, bool bid);

/* A price breakdown as offers and instances carry it in search{} and
 * instance{}: gpuCostPerHour, diskHour, totalHour (their sum), ... */
json_t *sim_market_cost(double gpu, double disk);

#endif
