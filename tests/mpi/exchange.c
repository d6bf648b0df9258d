/* All to all, point to point: every rank exchanges checked messages of 0 B, 1 B, 100 B, 4 KiB,
 * 64 KiB and 1 MiB with every rank (itself included). Memory stays small at many ranks (issue
 * #20: 64 processes on one machine), so every size goes in rounds — round k: an Isend to
 * (r+k)%N and an Irecv from (r-k+N)%N, Waitall, check — with one message of each kind in flight;
 * and the small sizes (up to 4 KiB) also with every send and receive to and from the N-1 others in
 * flight at once, some of the receives by MPI_ANY_SOURCE, checked by status.MPI_SOURCE. A message's
 * content depends on its sender, receiver, size and round, and is not periodic, so a message
 * delivered to the wrong receive or a chunk at the wrong offset shows.
 *
 * `exchange [LARGEST]`: only the sizes up to LARGEST bytes (default: all), for quick runs at many
 * ranks, where the 1 MiB rounds move N*N MiB. */
#include "mpitest.h"

#include <stdint.h>

static const size_t SIZES[] = {0, 1, 100, 4096, 65536, 1 << 20};
#define NSIZES ((int)(sizeof SIZES / sizeof *SIZES))
/* The all-at-once phase takes the sizes up to this one. */
#define SMALL 4096
/* Round k of a phase is a message's round; the all-at-once phase is its own "round". */
#define AT_ONCE (-1)

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t seed_of(int src, int dst, size_t n, int round) {
    return mix(((uint64_t)src << 48) ^ ((uint64_t)dst << 32) ^ ((uint64_t)n << 8) ^
               (uint64_t)(uint32_t)round) |
           1;
}

/* xorshift64, 8 bytes a step: the message from `src` to `dst` of `n` bytes in `round`. */
static void pattern(unsigned char *b, size_t n, int src, int dst, int round) {
    uint64_t x = seed_of(src, dst, n, round);
    for (size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(b + i, &x, n - i < 8 ? n - i : 8);
    }
}

static int matches(const unsigned char *b, size_t n, int src, int dst, int round,
                   unsigned char *scratch) {
    pattern(scratch, n, src, dst, round);
    return memcmp(b, scratch, n) == 0;
}

/* Checks a completed receive of `n` bytes by `me`: from `src` (where the receive named one), with
 * the tag, size and content that sender gave it. Returns the source. */
static int check_received(const MPI_Status *st, const unsigned char *b, size_t n, int src, int tag,
                          int me, int round, int size, unsigned char *scratch) {
    int count = -1;
    OK(MPI_Get_count(st, MPI_BYTE, &count));
    CHECK(st->MPI_TAG == tag);
    CHECK(st->MPI_SOURCE >= 0 && st->MPI_SOURCE < size);
    CHECK(src == MPI_ANY_SOURCE || st->MPI_SOURCE == src);
    CHECK(count == (int)n);
    CHECK(matches(b, n, st->MPI_SOURCE, me, round, scratch));
    return st->MPI_SOURCE;
}

/* Round k: one message to (me+k)%N and one from (me-k+N)%N, for k = 0 (itself) to N-1. */
static long rounds(int me, int size, int si, unsigned char *out, unsigned char *in,
                   unsigned char *scratch) {
    size_t n = SIZES[si];
    int tag = si;
    long got = 0;
    for (int k = 0; k < size; k++) {
        int to = (me + k) % size, from = (me - k + size) % size;
        pattern(out, n, me, to, k);
        memset(in, 0xEE, n);
        MPI_Request r[2];
        MPI_Status st[2];
        OK(MPI_Irecv(in, (int)n, MPI_BYTE, from, tag, MPI_COMM_WORLD, &r[0]));
        OK(MPI_Isend(out, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD, &r[1]));
        OK(MPI_Waitall(2, r, st));
        CHECK(r[0] == MPI_REQUEST_NULL && r[1] == MPI_REQUEST_NULL);
        check_received(&st[0], in, n, from, tag, me, k, size, scratch);
        got++;
    }
    return got;
}

/* Every send and receive to and from the N-1 others in flight at once. The receives naming their
 * source are posted first, then those by MPI_ANY_SOURCE (every third source), so that a wildcard
 * never takes a message a named receive waits for; each source must be seen exactly once. */
static long at_once(int me, int size, int si, unsigned char *out, unsigned char *in,
                    unsigned char *scratch) {
    size_t n = SIZES[si];
    int tag = 100 + si, others = size - 1;
    if (others == 0) return 0;
    MPI_Request *r = malloc(2 * (size_t)others * sizeof *r);
    MPI_Status *st = malloc(2 * (size_t)others * sizeof *st);
    int *want = malloc((size_t)others * sizeof *want), *seen = calloc((size_t)size, sizeof *seen);
    size_t slot = n ? n : 1;
    int posted = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 1; k < size; k++) {
            int wild = k % 3 == 0;
            if (wild != pass) continue;
            int from = wild ? MPI_ANY_SOURCE : (me - k + size) % size;
            want[posted] = from;
            memset(in + posted * slot, 0xEE, n);
            OK(MPI_Irecv(in + posted * slot, (int)n, MPI_BYTE, from, tag, MPI_COMM_WORLD,
                         &r[posted]));
            posted++;
        }
    }
    CHECK(posted == others);
    for (int k = 1; k < size; k++) {
        int to = (me + k) % size;
        unsigned char *b = out + (k - 1) * slot;
        pattern(b, n, me, to, AT_ONCE);
        OK(MPI_Isend(b, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD, &r[others + k - 1]));
    }
    OK(MPI_Waitall(2 * others, r, st));
    for (int i = 0; i < 2 * others; i++) CHECK(r[i] == MPI_REQUEST_NULL);
    for (int i = 0; i < others; i++) {
        int src = check_received(&st[i], in + i * slot, n, want[i], tag, me, AT_ONCE, size, scratch);
        CHECK(src != me);
        seen[src]++;
    }
    for (int s = 0; s < size; s++) CHECK(seen[s] == (s != me));
    free(r);
    free(st);
    free(want);
    free(seen);
    return others;
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int me, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &me));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    say("exchange on %d ranks\n", size);
    int nsizes = NSIZES;
    if (argc > 1) {
        long largest = atol(argv[1]);
        while (nsizes > 1 && (long)SIZES[nsizes - 1] > largest) nsizes--;
        say("sizes up to %zu B\n", SIZES[nsizes - 1]);
    }
    size_t big = SIZES[nsizes - 1];
    /* One message each way for the rounds; N-1 of each for the small sizes at once. */
    size_t room = big > (size_t)size * SMALL ? big : (size_t)size * SMALL;
    unsigned char *out = malloc(room), *in = malloc(room), *scratch = malloc(big + 1);
    CHECK(out && in && scratch);
    long messages[2] = {0, 0};
    int small = 0;
    for (int si = 0; si < nsizes; si++) {
        long got = rounds(me, size, si, out, in, scratch);
        long all[2] = {got, got * (long)SIZES[si]}, sum[2];
        OK(MPI_Reduce(all, sum, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD));
        say("%zu B in rounds: %ld messages, %ld bytes\n", SIZES[si], sum[0], sum[1]);
        messages[0] += got;
        if (SIZES[si] > SMALL) continue;
        small++;
        got = at_once(me, size, si, out, in, scratch);
        all[0] = got;
        all[1] = got * (long)SIZES[si];
        OK(MPI_Reduce(all, sum, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD));
        say("%zu B all at once: %ld messages, %ld bytes\n", SIZES[si], sum[0], sum[1]);
        messages[1] += got;
    }
    long total[2];
    OK(MPI_Allreduce(messages, total, 2, MPI_LONG, MPI_SUM, MPI_COMM_WORLD));
    CHECK(total[0] == (long)nsizes * size * size);
    CHECK(total[1] == (long)small * size * (size - 1));
    free(out);
    free(in);
    free(scratch);
    say("exchange: ok\n");
    OK(MPI_Finalize());
    return 0;
}
