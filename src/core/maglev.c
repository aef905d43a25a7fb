/* Maglev lookup table: population, weights, permutations from keys, digest. */
#include "core/maglev.h"

bool maglev_size_valid(uint32_t m)
{
	if (m < MAGLEV_SIZE_MIN || m > MAGLEV_SIZE_MAX || m % 2 == 0)
		return false;
	for (uint32_t d = 3; d <= m / d; d += 2)
		if (m % d == 0)
			return false;
	return true;
}
