/* The simulator's deterministic pseudo-random numbers (splitmix64): the same
 * seed gives the same market, the same fault decisions and the same keys. */
#ifndef FERRY_SIM_RNG_H
#define FERRY_SIM_RNG_H

#include <stdint.h>

struct sim_rng {
	uint64_t s;
};

/* A generator for `seed`; different `stream`s of one seed are independent. */
void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, 1). */
double sim_rng_unit(struct sim_rng *r);
/* Uniform in [lo, hi). */
double sim_rng_range(struct sim_rng *r, double lo, double hi);
/* Uniform integer in [lo, hi], both ends included. */
long long sim_rng_int(struct sim_rng *r, long long lo, long long hi);
/* Whether an event of probability p happens; draws nothing when p <= 0. */
int sim_rng_chance(struct sim_rng *r, double p);
/* 2n lowercase hex digits and a NUL into out (size 2n + 1). */
void sim_rng_hex(struct sim_rng *r, char *out, unsigned n);

#endif
