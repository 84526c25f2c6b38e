#include "sim/rng.h"

static uint64_t sim_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream)
{
	r->s = sim_mix(seed ^ sim_mix(stream + 0x632be59bd9b4e019ULL));
}

uint64_t sim_rng_next(struct sim_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return sim_mix(r->s);
}

double sim_rng_unit(struct sim_rng *r)
{
	return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double sim_rng_range(struct sim_rng *r, double lo, double hi)
{
	return lo + (hi - lo) * sim_rng_unit(r);
}

long long sim_rng_int(struct sim_rng *r, long long lo, long long hi)
{
	uint64_t span;

	if (hi <= lo)
		return lo;
	span = (uint64_t)(hi - lo) + 1;
	return lo + (long long)(sim_rng_next(r) % span);
}

int sim_rng_chance(struct sim_rng *r, double p)
{
	if (p <= 0)
		return 0;
	return sim_rng_unit(r) < p;
}

void sim_rng_hex(struct sim_rng *r, char *out, unsigned n)
{
	static const char digits[] = "0123456789abcdef";
	uint64_t v = 0;

	for (unsigned i = 0; i < 2 * n; i++) {
		if (i % 16 == 0)
			v = sim_rng_next(r);
		out[i] = digits[v & 15];
		v >>= 4;
	}
	out[2 * n] = '\0';
}
