/* SPDX-License-Identifier: GPL-2.0-only */
/* Maglev lookup table: population, weights, permutations from keys, digest. */
#include "core/maglev.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define MAGLEV_HAVE_AVX2 1
#endif

#define XXH_INLINE_ALL
#include <xxhash.h>

/*
 * Once few slots are empty, a turn finds its slot by scanning the list of empty slots instead of
 * walking the backend's permutation (about M / empty probes). Both give the same slot, the first
 * empty one in the backend's permutation order; only the speed differs. The scan starts at
 * sqrt(M / 2) empty slots with the scalar scan (some 6 cycles a slot) and at sqrt(M) with the
 * vector one (under 2 cycles a slot); measured on the test machine, sqrt(M / 2) was 2.5% faster
 * than sqrt(M) for the scalar scan at M = 65537, sqrt(M) 1-2% faster than sqrt(M / 2) and
 * sqrt(2 M) for the vector scan at M = 655373.
 */
#define MAGLEV_TAIL_DIV_SCALAR 2u
#define MAGLEV_TAIL_DIV_VECTOR 1u
/*
 * The tail scans with AVX2 only from this M on (M = 131072: 362 empty slots). At M = 65537 the
 * vector scan gave the same best build time as the scalar one but a 10% worse median: 256-bit
 * floating-point code that short does not pay for what it costs the core (vector unit warm-up, a
 * lower clock that outlasts it), while at M = 655373 it wins.
 */
#define MAGLEV_VSCAN_MIN_SIZE (1u << 17)
/* Empty slots in the tail list: an index plus the padding fits in SCAN_KEY_BITS. */
#define MAGLEV_TAIL_MAX 4088u
#define SCAN_PAD        8u  /* the empty list is padded to a multiple of this */
#define SCAN_KEY_BITS   12u /* scan keys are (distance << SCAN_KEY_BITS) | index */

/*
 * The functions that hold the hot loops start on a cache line, so their loops sit at the same
 * offsets in every binary that links this file: the build time moved by up to 13% with where the
 * linker happened to put them (measured at M = 65537), and now it does not.
 */
#define MAGLEV_HOT_ALIGN __attribute__((aligned(64)))

/* Hot per-backend state while a table is populated, indexed by turn order. */
struct maglev_pos {
	/*
	 * Slot at the backend's last examined permutation position (before its first turn, the one
	 * before offset): its walk goes on from the next. Kept rather than the next position so a
	 * turn steps once at the start instead of once after the claim: fewer instructions a turn.
	 */
	uint32_t last;
	uint32_t skip; /* permutation step */
};

/* Population state. */
struct maglev_fill {
	uint16_t *table;
	uint32_t m;
	uint32_t empty;    /* slots not yet claimed */
	uint32_t tail_max; /* switch to the empty-slot scan at this many empty slots */
	uint64_t *used;    /* occupancy bitmap, one bit per slot */
	struct maglev_pos *pos;
	const uint16_t *ids; /* value written into the table, per backend */
	uint32_t n;          /* backends with positive weight */
	uint32_t *inv;       /* skip^-1 mod M per backend, for the tail */
	uint32_t *empties;   /* the empty slots in the tail phase, then padding (see empties_pad) */
	double *empties_d;   /* the same as doubles, for scan_nearest_avx2 */
	uint32_t n_empties;
	bool in_tail;
	bool avx2;    /* the tail uses scan_nearest_avx2: the CPU has AVX2 and FMA, M is large */
	uint64_t mu;  /* floor((2^64 - 1) / M), for mod_m() */
	double m_inv; /* 1.0 / M, for scan_nearest_avx2() */
};

bool maglev_size_valid(uint32_t m)
{
	if (m < MAGLEV_SIZE_MIN || m > MAGLEV_SIZE_MAX || m % 2 == 0)
		return false;
	for (uint32_t d = 3; d <= m / d; d += 2)
		if (m % d == 0)
			return false;
	return true;
}

void maglev_perm_from_key(struct maglev_perm *p, const uint8_t *key, size_t key_len, uint64_t seed,
                          uint32_t m)
{
	p->offset = (uint32_t)(XXH64(key, key_len, seed) % m);
	p->skip = (uint32_t)(XXH64(key, key_len, seed ^ MAGLEV_SKIP_SEED_XOR) % (m - 1)) + 1;
}

static uint32_t isqrt32(uint64_t x)
{
	uint64_t r = (uint64_t)sqrt((double)x);

	while (r * r > x)
		r--;
	while ((r + 1) * (r + 1) <= x)
		r++;
	return (uint32_t)r;
}

/* Empty slots at which the tail scan starts (the larger for the vector scan). */
static uint32_t tail_max_for(uint32_t m, bool vector)
{
	uint32_t t = isqrt32(m / (vector ? MAGLEV_TAIL_DIV_VECTOR : MAGLEV_TAIL_DIV_SCALAR));

	return t < MAGLEV_TAIL_MAX ? t : MAGLEV_TAIL_MAX;
}

/* a^-1 mod m for prime m and 0 < a < m (extended Euclid; |t| < m < 2^31 throughout). */
static uint32_t inv_mod(uint32_t a, uint32_t m)
{
	int32_t t = 0, new_t = 1;
	uint32_t r = m, new_r = a;

	while (new_r != 0) {
		uint32_t q = r / new_r, tmp_r = r - q * new_r;
		int32_t tmp_t = t - (int32_t)q * new_t;

		t = new_t;
		new_t = tmp_t;
		r = new_r;
		new_r = tmp_r;
	}
	return (uint32_t)(t < 0 ? t + (int32_t)m : t);
}

/*
 * x mod m for x < 2^42 without a division (Barrett): with mu = floor((2^64 - 1) / m) the estimated
 * quotient is the true one or one less, so one conditional subtraction finishes.
 */
static inline uint32_t mod_m(uint64_t x, uint32_t m, uint64_t mu)
{
	uint64_t q = (uint64_t)(((unsigned __int128)x * mu) >> 64);
	uint64_t r = x - q * m;

	return (uint32_t)(r >= m ? r - m : r);
}

static inline uint32_t add_m(uint32_t a, uint32_t b, uint32_t m)
{
	a += b;
	return a >= m ? a - m : a;
}

/*
 * Walks the permutation from the position after c to the first empty slot and claims it in the
 * bitmap. The next position after c is c + skip, wrapped below m; with ms = m - skip it wraps iff
 * c >= ms, so c - ms is the wrapped value and its borrow picks c + skip instead: one subtraction
 * and a conditional move, two cycles of latency a step (c + skip, compare, select take three).
 *
 * On x86-64 the loop is written out: GCC turns the C step into a branch (half of them
 * mispredicted) rather than the subtraction and conditional move, and the time of a build moved
 * by up to 8% with where the loop happened to land relative to 32- and 64-byte boundaries
 * (measured at M = 65537: 1.02 to 1.10 ms for the same code, linked at different offsets). So the
 * loop, eight instructions in 28 bytes, starts on a 32-byte boundary. The claim sets the bit in
 * the word the last probe loaded and stores it back (two instructions, not a second load and
 * shift): 5% of the build at M = 65537.
 */
static inline __attribute__((always_inline)) uint32_t probe_claim(uint64_t *used, uint32_t m,
                                                                  uint32_t c, uint32_t skip)
{
	uint32_t ms = m - skip;
#if defined(__x86_64__)
	uint64_t w, t;

	__asm__("jmp 1f\n\t"
	        ".p2align 5\n"
	        "1:\n\t"
	        "lea (%q[c],%q[skip]), %k[t]\n\t" /* c + skip */
	        "sub %[ms], %[c]\n\t"             /* c - ms; borrow iff c < ms */
	        "cmovb %k[t], %[c]\n\t"
	        "mov %[c], %k[t]\n\t"
	        "shr $6, %k[t]\n\t"
	        "mov (%[used],%[t],8), %[w]\n\t"
	        "bt %q[c], %[w]\n\t" /* bit c % 64 of used[c / 64] */
	        "jc 1b\n\t"
	        "bts %q[c], %[w]\n\t" /* claim: the word is at hand */
	        "mov %[w], (%[used],%[t],8)"
	        : [c] "+r"(c), [t] "=&r"(t), [w] "=&r"(w),
	          "+m"(*(uint64_t(*)[(MAGLEV_SIZE_MAX + 63) / 64]) used)
	        : [skip] "r"(skip), [ms] "r"(ms), [used] "r"(used)
	        : "cc");
#else
	do
		c = c < ms ? c + skip : c - ms;
	while ((used[c >> 6] >> (c & 63)) & 1);
	used[c >> 6] |= 1ull << (c & 63);
#endif
	return c;
}

/*
 * Fills empties[n_empties .. next multiple of SCAN_PAD) with copies of empties[0], so that the
 * vector scan needs no remainder loop. A copy has the same distance as empties[0] and a larger
 * index, so it never wins the scan's (distance, index) minimum.
 */
static void empties_pad(struct maglev_fill *f)
{
	for (uint32_t k = f->n_empties; k % SCAN_PAD; k++) {
		f->empties[k] = f->empties[0];
		f->empties_d[k] = f->empties_d[0];
	}
}

static void tail_start(struct maglev_fill *f)
{
	uint32_t words = (f->m + 63) / 64;

	f->n_empties = 0;
	for (uint32_t w = 0; w < words; w++) {
		uint64_t free_bits = ~f->used[w];

		while (free_bits) {
			uint32_t c = w * 64 + (uint32_t)__builtin_ctzll(free_bits);

			free_bits &= free_bits - 1;
			f->empties_d[f->n_empties] = c;
			f->empties[f->n_empties++] = c;
		}
	}
	empties_pad(f);
	/*
	 * All inverses with one inv_mod (Montgomery's batch inversion): inv[i] first holds the
	 * prefix product skip[0] * ... * skip[i], then, walking back, the inverse of skip[i].
	 */
	{
		uint32_t m = f->m, n = f->n, t;
		uint64_t mu = f->mu;

		f->inv[0] = f->pos[0].skip;
		for (uint32_t i = 1; i < n; i++)
			f->inv[i] = mod_m((uint64_t)f->inv[i - 1] * f->pos[i].skip, m, mu);
		t = inv_mod(f->inv[n - 1], m);
		for (uint32_t i = n - 1; i > 0; i--) {
			f->inv[i] = mod_m((uint64_t)t * f->inv[i - 1], m, mu);
			t = mod_m((uint64_t)t * f->pos[i].skip, m, mu);
		}
		f->inv[0] = t;
	}
	f->in_tail = true;
}

/*
 * Index into empties[0..n_e) of the slot nearest to c in the permutation with step skip = inv^-1:
 * the one with the smallest ((e - c) * inv) mod M. Distances are distinct, so the answer is unique.
 */
static uint32_t scan_nearest(const uint32_t *empties, uint32_t n_e, uint32_t c, uint32_t inv,
                             uint32_t m, uint64_t mu)
{
	uint64_t best = UINT64_MAX;

	for (uint32_t k = 0; k < n_e; k++) {
		uint64_t d = mod_m((uint64_t)(empties[k] + m - c) * inv, m, mu);
		uint64_t key = d << SCAN_KEY_BITS | k;

		best = key < best ? key : best;
	}
	return (uint32_t)(best & ((1u << SCAN_KEY_BITS) - 1));
}

#ifdef MAGLEV_HAVE_AVX2
#define SCAN_ROUND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/*
 * scan_nearest, four slots per vector in double precision, over empties_d (the empty slots as
 * doubles). Exact: x = (e + m - c) * inv < 2^41 is exact in a double; x * (1/m) is within 2^-32
 * of x/m (in any rounding mode), so rounded to the nearest integer (explicitly, not by MXCSR) it
 * is the true quotient or one more, and x - q*m (one fused, exact operation on integers below
 * 2^53) lies in [-m, m): one conditional addition of m gives the distance. Keys d * 2^12 + k <
 * 2^32 are exact too.
 */
__attribute__((target("avx2,fma"))) static uint32_t scan_nearest_avx2(const double *empties_d,
                                                                      uint32_t n_e, uint32_t c,
                                                                      uint32_t inv, uint32_t m,
                                                                      double m_inv)
{
	const __m256d vinv = _mm256_set1_pd((double)inv), vm = _mm256_set1_pd((double)m);
	const __m256d vminv = _mm256_set1_pd(m_inv), voff = _mm256_set1_pd((double)(m - c));
	const __m256d vscale = _mm256_set1_pd((double)(1u << SCAN_KEY_BITS));
	const __m256d vstep = _mm256_set1_pd(8.0), vzero = _mm256_setzero_pd();
	__m256d best0 = _mm256_set1_pd(1e300), best1 = best0, b;
	__m256d k0 = _mm256_setr_pd(0, 1, 2, 3), k1 = _mm256_setr_pd(4, 5, 6, 7);

	/* empties_d is padded (empties_pad): whole groups of eight. */
	for (uint32_t k = 0; k < n_e; k += 8) {
		__m256d x0 =
		    _mm256_mul_pd(_mm256_add_pd(_mm256_loadu_pd(empties_d + k), voff), vinv);
		__m256d x1 =
		    _mm256_mul_pd(_mm256_add_pd(_mm256_loadu_pd(empties_d + k + 4), voff), vinv);
		__m256d q0 = _mm256_round_pd(_mm256_mul_pd(x0, vminv), SCAN_ROUND);
		__m256d q1 = _mm256_round_pd(_mm256_mul_pd(x1, vminv), SCAN_ROUND);
		__m256d r0 = _mm256_fnmadd_pd(q0, vm, x0);
		__m256d r1 = _mm256_fnmadd_pd(q1, vm, x1);

		r0 = _mm256_add_pd(r0, _mm256_and_pd(_mm256_cmp_pd(r0, vzero, _CMP_LT_OQ), vm));
		r1 = _mm256_add_pd(r1, _mm256_and_pd(_mm256_cmp_pd(r1, vzero, _CMP_LT_OQ), vm));
		best0 = _mm256_min_pd(best0, _mm256_fmadd_pd(r0, vscale, k0));
		best1 = _mm256_min_pd(best1, _mm256_fmadd_pd(r1, vscale, k1));
		k0 = _mm256_add_pd(k0, vstep);
		k1 = _mm256_add_pd(k1, vstep);
	}
	b = _mm256_min_pd(best0, best1);
	b = _mm256_min_pd(b, _mm256_permute2f128_pd(b, b, 1));
	b = _mm256_min_pd(b, _mm256_permute_pd(b, 5));
	return (uint32_t)((uint64_t)_mm256_cvtsd_f64(b) & ((1u << SCAN_KEY_BITS) - 1));
}
#endif

/*
 * A turn of backend i in the tail phase. Every slot up to pos[i].last in i's permutation is used,
 * so the empty slot nearest to the next position c in permutation order, ((e - c) * skip^-1)
 * mod M, is the one the probe walk would reach. Returns false when that filled the table.
 */
MAGLEV_HOT_ALIGN static bool turn_scan(struct maglev_fill *f, uint32_t i)
{
	uint32_t m = f->m, c = add_m(f->pos[i].last, f->pos[i].skip, m), inv, k, e;

	if (!f->in_tail)
		tail_start(f);
	inv = f->inv[i];
#ifdef MAGLEV_HAVE_AVX2
	if (f->avx2)
		k = scan_nearest_avx2(f->empties_d, f->n_empties, c, inv, m, f->m_inv);
	else
#endif
		k = scan_nearest(f->empties, f->n_empties, c, inv, m, f->mu);
	e = f->empties[k];
	f->empties[k] = f->empties[--f->n_empties];
	f->empties_d[k] = f->empties_d[f->n_empties];
	empties_pad(f);
	f->used[e >> 6] |= 1ull << (e & 63);
	f->table[e] = f->ids[i];
	f->pos[i].last = e;
	return --f->empty != 0;
}

/* A turn of backend i by walking its permutation. Returns false when that filled the table. */
static inline __attribute__((always_inline)) bool turn_probe(struct maglev_fill *f, uint32_t i)
{
	uint32_t c = probe_claim(f->used, f->m, f->pos[i].last, f->pos[i].skip);

	f->table[c] = f->ids[i];
	f->pos[i].last = c;
	return --f->empty != 0;
}

/*
 * Equal weights: the paper's round robin, every backend one turn per round. Turns that cannot
 * reach the tail threshold run in a tight loop without the per-turn checks.
 */
static void fill_equal(struct maglev_fill *f)
{
	uint16_t *table = f->table;
	uint64_t *used = f->used;
	struct maglev_pos *pos = f->pos;
	const uint16_t *ids = f->ids;
	uint32_t m = f->m, n = f->n, i = 0;

	while (f->empty > f->tail_max) {
		uint32_t run = n - i < f->empty - f->tail_max ? n - i : f->empty - f->tail_max;

		for (uint32_t end = i + run; i < end; i++) {
			uint32_t c = probe_claim(used, m, pos[i].last, pos[i].skip);

			table[c] = ids[i];
			pos[i].last = c;
		}
		f->empty -= run;
		if (i == n)
			i = 0;
	}
	if (f->empty == 0)
		return;
	for (;;) {
		if (!turn_scan(f, i))
			return;
		if (++i == n)
			i = 0;
	}
}

/* Round in which a backend that has taken `claimed` turns takes its next one (docs/maglev.md). */
static inline uint64_t turn_round(uint64_t claimed, uint32_t weight, uint32_t wmax)
{
	return claimed * wmax / weight + 1;
}

#define HEAP_KEY(round, i) (((round) << 16) | (i)) /* turn order: round, then backend index */

static void heap_sift_down(uint64_t *h, uint32_t len, uint32_t i)
{
	uint64_t v = h[i];

	for (;;) {
		uint32_t l = 2 * i + 1, s;

		if (l >= len)
			break;
		s = l + 1 < len && h[l + 1] < h[l] ? l + 1 : l;
		if (h[s] >= v)
			break;
		h[i] = h[s];
		i = s;
	}
	h[i] = v;
}

/*
 * Unequal weights use a round scan while a round visits at most this many backends per turn
 * taken (n * w_max / sum of weights), else the heap.
 */
#define MAGLEV_SCAN_VISITS_MAX 8u

/*
 * Unequal weights: turns in order of (round, backend index), a backend taking a turn in round r
 * iff claimed * wmax < r * weight. With balanced weights most backends go every round or two, so
 * the rounds are walked as the definition says. With skewed weights (one heavy backend among
 * many light ones) most backends sit most rounds out; then a min-heap keyed by (next round,
 * index), next round = floor(claimed * wmax / weight) + 1, yields the same sequence without
 * visiting them.
 */
static void fill_weighted(struct maglev_fill *f, const uint32_t *weights, uint64_t *claimed,
                          uint64_t *heap)
{
	uint32_t wmax = 0, n = f->n;
	uint64_t wsum = 0;

	for (uint32_t i = 0; i < n; i++) {
		wmax = weights[i] > wmax ? weights[i] : wmax;
		wsum += weights[i];
		claimed[i] = 0;
	}
	if ((uint64_t)n * wmax <= MAGLEV_SCAN_VISITS_MAX * wsum) {
		for (uint64_t r = 1;; r++)
			for (uint32_t i = 0; i < n; i++) {
				bool more;

				if (claimed[i] * wmax >= r * weights[i])
					continue;
				more = f->empty > f->tail_max ? turn_probe(f, i) : turn_scan(f, i);
				if (!more)
					return;
				claimed[i]++;
			}
	}
	for (uint32_t i = 0; i < n; i++)
		heap[i] = HEAP_KEY(turn_round(0, weights[i], wmax), (uint64_t)i);
	for (uint32_t i = n / 2; i-- > 0;)
		heap_sift_down(heap, n, i);
	for (;;) {
		uint32_t i = (uint32_t)(heap[0] & 0xffff);
		bool more = f->empty > f->tail_max ? turn_probe(f, i) : turn_scan(f, i);

		if (!more)
			return;
		claimed[i]++;
		heap[0] = HEAP_KEY(turn_round(claimed[i], weights[i], wmax), (uint64_t)i);
		heap_sift_down(heap, n, 0);
	}
}

/* Bytes of scratch memory populate_core needs for m slots and n backends (8-byte aligned parts). */
static size_t scratch_size(uint32_t m, uint32_t n)
{
	size_t words = (m + 63) / 64;

	return n * (sizeof(struct maglev_pos) + 2 * sizeof(uint64_t) + 2 * sizeof(uint32_t) +
	            sizeof(uint16_t)) +
	       (tail_max_for(m, true) + SCAN_PAD) * sizeof(double) + words * sizeof(uint64_t) +
	       (tail_max_for(m, true) + SCAN_PAD) * sizeof(uint32_t) + 8;
}

/*
 * The population proper, on validated input: backend k (in turn order) has perms[k], weights[k]
 * and writes ids[k] into the table. scratch holds scratch_size(m, n) bytes, 8-byte aligned.
 */
MAGLEV_HOT_ALIGN static void populate_core(uint16_t *table, uint32_t m,
                                           const struct maglev_perm *perms, const uint32_t *weights,
                                           const uint16_t *ids, uint32_t n, void *scratch,
                                           unsigned flags)
{
	uint32_t words = (m + 63) / 64;
	uint64_t *used = scratch;
	uint64_t *claimed = used + words;
	uint64_t *heap = claimed + n;
	double *empties_d = (double *)(heap + n);
	struct maglev_pos *pos =
	    (struct maglev_pos *)(empties_d + tail_max_for(m, true) + SCAN_PAD);
	uint32_t *wts = (uint32_t *)(pos + n);
	uint32_t *inv = wts + n;
	uint32_t *empties = inv + n;
	uint16_t *act_ids = (uint16_t *)(empties + tail_max_for(m, true) + SCAN_PAD);
	struct maglev_fill f = {
	    .table = table,
	    .m = m,
	    .empty = m,
	    .used = used,
	    .pos = pos,
	    .ids = act_ids,
	    .inv = inv,
	    .empties = empties,
	    .empties_d = empties_d,
	    .mu = UINT64_MAX / m,
	    .m_inv = 1.0 / m,
#ifdef MAGLEV_HAVE_AVX2
	    .avx2 = !(flags & MAGLEV_BUILD_SCALAR) && m >= MAGLEV_VSCAN_MIN_SIZE &&
	            __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
#endif
	};
	bool equal = true;

	f.tail_max = tail_max_for(m, f.avx2);
	for (uint32_t k = 0; k < n; k++) {
		if (weights[k] == 0)
			continue;
		pos[f.n] = (struct maglev_pos){add_m(perms[k].offset, m - perms[k].skip, m),
		                               perms[k].skip};
		wts[f.n] = weights[k];
		act_ids[f.n] = ids[k];
		if (wts[f.n] != wts[0])
			equal = false;
		f.n++;
	}
	if (f.n == 0) {
		for (uint32_t s = 0; s < m; s++)
			table[s] = MAGLEV_EMPTY;
		return;
	}
	memset(used, 0, words * sizeof(uint64_t));
	/* Bits past slot m - 1 count as used so the tail's scan of free bits never sees them. */
	if (m % 64)
		used[words - 1] = ~0ull << (m % 64);
	if (equal)
		fill_equal(&f);
	else
		fill_weighted(&f, wts, claimed, heap);
}

int maglev_populate(uint16_t *table, uint32_t m, const struct maglev_perm *perms,
                    const uint32_t *weights, uint32_t n)
{
	uint16_t *ids = NULL;
	void *scratch = NULL;
	int err = -EINVAL;

	if (!table || !perms || !weights || n == 0 || n > MAGLEV_BACKENDS_MAX ||
	    !maglev_size_valid(m))
		goto out;
	for (uint32_t k = 0; k < n; k++)
		if (perms[k].offset >= m || perms[k].skip == 0 || perms[k].skip >= m ||
		    weights[k] > MAGLEV_WEIGHT_MAX)
			goto out;
	err = -ENOMEM;
	ids = malloc(n * sizeof(*ids));
	scratch = malloc(scratch_size(m, n));
	if (!ids || !scratch)
		goto out;
	for (uint32_t k = 0; k < n; k++)
		ids[k] = (uint16_t)k;
	populate_core(table, m, perms, weights, ids, n, scratch, 0);
	err = 0;
out:
	free(ids);
	free(scratch);
	return err;
}

/*
 * A backend in key order: shorter keys first, then bytes (for lb_addr keys: IPv4 before IPv6, like
 * lb_addr_cmp). The first 16 key bytes, big-endian and zero-padded, make two integers that compare
 * like memcmp for keys of one length; longer keys fall back to memcmp beyond them.
 */
struct maglev_sorted {
	uint64_t hi, lo;
	const uint8_t *key;
	size_t key_len;
	uint32_t weight;
	uint16_t id;
};

static void sorted_init(struct maglev_sorted *s, const struct maglev_backend *b, uint16_t id)
{
	uint8_t pre[16] = {0};

	memcpy(pre, b->key, b->key_len < sizeof(pre) ? b->key_len : sizeof(pre));
	s->hi = s->lo = 0;
	for (int i = 0; i < 8; i++) {
		s->hi = s->hi << 8 | pre[i];
		s->lo = s->lo << 8 | pre[8 + i];
	}
	s->key = b->key;
	s->key_len = b->key_len;
	s->weight = b->weight;
	s->id = id;
}

static inline int sorted_cmp(const struct maglev_sorted *a, const struct maglev_sorted *b)
{
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return a->key_len > 16 ? memcmp(a->key + 16, b->key + 16, a->key_len - 16) : 0;
}

#define SORT_RUN 16u /* sorted_sort insertion-sorts runs of this many records before merging */

/*
 * Bottom-up merge sort of a[0..n) using tmp[0..n); the result ends up in a. Runs of SORT_RUN are
 * insertion-sorted first: that saves four merge passes, each of which copies every 40-byte
 * record, and costs one compare a record where the input is in order already.
 */
static void sorted_sort(struct maglev_sorted *a, struct maglev_sorted *tmp, uint32_t n)
{
	struct maglev_sorted *src = a, *dst = tmp, *t;

	for (uint32_t lo = 0; lo < n; lo += SORT_RUN) {
		uint32_t hi = lo + SORT_RUN < n ? lo + SORT_RUN : n;

		for (uint32_t i = lo + 1; i < hi; i++) {
			struct maglev_sorted v = a[i];
			uint32_t j = i;

			for (; j > lo && sorted_cmp(&v, &a[j - 1]) < 0; j--)
				a[j] = a[j - 1];
			a[j] = v;
		}
	}
	for (uint32_t w = SORT_RUN; w < n; w *= 2) {
		for (uint32_t lo = 0; lo < n; lo += 2 * w) {
			uint32_t mid = lo + w < n ? lo + w : n,
			         hi = lo + 2 * w < n ? lo + 2 * w : n;
			uint32_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				dst[k++] = sorted_cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
}

int maglev_build(uint16_t *table, uint32_t m, const struct maglev_backend *b, uint32_t n,
                 uint64_t seed)
{
	return maglev_build_flags(table, m, b, n, seed, 0);
}

int maglev_build_flags(uint16_t *table, uint32_t m, const struct maglev_backend *b, uint32_t n,
                       uint64_t seed, unsigned flags)
{
	struct maglev_sorted *sorted;
	struct maglev_perm *perms;
	uint32_t *weights;
	uint16_t *ids;
	void *mem = NULL, *scratch;
	int err = -EINVAL;

	if (!table || !b || n == 0 || n > MAGLEV_BACKENDS_MAX || !maglev_size_valid(m))
		goto out;
	for (uint32_t k = 0; k < n; k++)
		if (!b[k].key || b[k].key_len == 0 || b[k].weight > MAGLEV_WEIGHT_MAX)
			goto out;
	err = -ENOMEM;
	/*
	 * One allocation: the sorted view and its merge buffer, the per-backend arrays, then
	 * populate_core's scratch.
	 */
	mem = malloc(n * (2 * sizeof(*sorted) + sizeof(*perms) + sizeof(*weights) + sizeof(*ids)) +
	             scratch_size(m, n) + 8);
	if (!mem)
		goto out;
	sorted = mem;
	perms = (struct maglev_perm *)(sorted + 2 * n);
	weights = (uint32_t *)(perms + n);
	ids = (uint16_t *)(weights + n);
	scratch = (void *)(((uintptr_t)(ids + n) + 7) & ~(uintptr_t)7);
	for (uint32_t k = 0; k < n; k++)
		sorted_init(&sorted[k], &b[k], (uint16_t)k);
	sorted_sort(sorted, sorted + n, n);
	err = -EINVAL;
	for (uint32_t k = 1; k < n; k++)
		if (sorted_cmp(&sorted[k - 1], &sorted[k]) == 0)
			goto out;
	for (uint32_t k = 0; k < n; k++) {
		maglev_perm_from_key(&perms[k], sorted[k].key, sorted[k].key_len, seed, m);
		weights[k] = sorted[k].weight;
		ids[k] = sorted[k].id;
	}
	populate_core(table, m, perms, weights, ids, n, scratch, flags);
	err = 0;
out:
	free(mem);
	return err;
}

void maglev_count(const uint16_t *table, uint32_t m, uint32_t *slots, uint32_t n)
{
	memset(slots, 0, n * sizeof(*slots));
	for (uint32_t s = 0; s < m; s++)
		if (table[s] < n)
			slots[table[s]]++;
}

#define DIGEST_CHUNK 256u /* slot hashes per XXH64_update call */

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t maglev_digest(const uint16_t *table, uint32_t m, const struct maglev_backend *b,
                       uint32_t n)
{
	uint8_t buf[DIGEST_CHUNK * 8];
	XXH64_state_t st;
	uint64_t *khash;
	uint32_t fill = 0;

	/* The key hashes are cached so each slot costs one lookup; without memory, hash per slot.
	 */
	khash = malloc((n ? n : 1) * sizeof(*khash));
	if (khash)
		for (uint32_t k = 0; k < n; k++)
			khash[k] = XXH64(b[k].key, b[k].key_len, 0);
	XXH64_reset(&st, 0);
	le64_put(buf, m);
	XXH64_update(&st, buf, 8);
	for (uint32_t s = 0; s < m; s++) {
		uint16_t id = table[s];
		uint64_t h = 0;

		if (id < n)
			h = khash ? khash[id] : XXH64(b[id].key, b[id].key_len, 0);
		le64_put(buf + 8 * fill, h);
		if (++fill == DIGEST_CHUNK) {
			XXH64_update(&st, buf, sizeof(buf));
			fill = 0;
		}
	}
	XXH64_update(&st, buf, 8 * fill);
	free(khash);
	return XXH64_digest(&st);
}
