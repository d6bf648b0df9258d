/* Failure checks shared by the C test programs: print where and why, then exit(1). */
#ifndef SNOO_TEST_CHECK_H
#define SNOO_TEST_CHECK_H

#include <snoo_mpi.h>
#include <stdio.h>
#include <stdlib.h>

/* A SNOO_MPI call that must succeed. */
#define CHECK(call)                                                                              \
    do {                                                                                         \
        int rc_ = (call);                                                                        \
        if (rc_ != SNOO_MPI_SUCCESS) {                                                           \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__, #call, rc_,            \
                    SNOO_MPI_Error_string(rc_));                                                 \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

/* A condition that must hold. */
#define EXPECT(cond)                                                                             \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);                 \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

#endif
