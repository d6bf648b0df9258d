/* Shared by the MPI test programs. Each program runs unchanged under real MPICH and under SNOO,
 * at 1 to 4 ranks (exchange.c and env.c also at 16 to 256 under SNOO, tests/tests/many_ranks.rs);
 * the harness (tests/src/mpi_programs.rs) compares what rank 0 prints, so only rank 0 prints, and
 * only results that any correct MPI must give. A failed check names the rank, the line and the
 * condition, and aborts the whole job. */
#ifndef MPITEST_H
#define MPITEST_H

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int mt_rank(void) {
    int init = 0, fin = 0, r = -1;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", mt_rank(), __FILE__,       \
                    __LINE__, #cond);                                                        \
            fflush(stderr);                                                                  \
            MPI_Abort(MPI_COMM_WORLD, 3);                                                    \
        }                                                                                    \
    } while (0)

/* A call that must succeed. */
#define OK(call) CHECK((call) == MPI_SUCCESS)

/* The error class of a call that must fail (under MPI_ERRORS_RETURN). */
static inline int mt_class(int code) {
    int c = -1;
    if (code == MPI_SUCCESS) return MPI_SUCCESS;
    MPI_Error_class(code, &c);
    return c;
}

/* Prints on rank 0 only, flushed so that output interleaves predictably with the launcher's. */
static inline void say(const char *fmt, ...) {
    if (mt_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* A byte pattern that depends on a seed, to tell messages apart. */
static inline void fill(unsigned char *b, size_t n, int seed) {
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 7 + seed * 13 + 1);
}

static inline int same(const unsigned char *b, size_t n, int seed) {
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(i * 7 + seed * 13 + 1)) return 0;
    return 1;
}

#endif
