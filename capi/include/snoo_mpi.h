/*
 * snoo_mpi.h: the C API of SNOO_MPI, MPI-like messaging between virtual machines through
 * hypervisor shared memory. Link with -lsnoo_mpi (libsnoo_mpi.so or libsnoo_mpi.a; with the static
 * library also -lpthread -ldl -lm), or use `pkg-config --cflags --libs snoo-mpi`.
 *
 * The six calls of the SNOO paper keep its names and argument orders (note that Send and Recv
 * order dest/source, flag (= tag) and datatype differently). Every call returns SNOO_MPI_SUCCESS (0)
 * or an error code below; SNOO_MPI_Error_string describes a code, SNOO_MPI_Error_detail gives the
 * full reason of the last failed call of the calling thread (which call, which value, what to do).
 * Calls are not thread-safe against each other beyond being serialised internally (one job per
 * process).
 *
 * Bad input never crashes and never disturbs the job: a call that fails on its arguments sends,
 * posts and consumes nothing and leaves *request untouched (a status, if given, gets the error
 * code). docs/reliability.md has the table of bad inputs and their codes. In short:
 *   - every call but Init, Initialized, Get_count and the error calls, before SNOO_MPI_Init or
 *     after SNOO_MPI_Finalize: SNOO_MPI_ERR_NOT_INITIALIZED; SNOO_MPI_Init twice:
 *     SNOO_MPI_ERR_ALREADY_INITIALIZED; SNOO_MPI_Init after SNOO_MPI_Finalize: SNOO_MPI_ERR_ARG.
 *   - NULL for an output the call needs (size, rank, flag, found, Get_count's status or count):
 *     SNOO_MPI_ERR_ARG; a NULL status (SNOO_MPI_STATUS_IGNORE) is always allowed where a status is
 *     an output.
 *   - a NULL request pointer (Isend, Irecv, Wait, Test, Waitall with count > 0), a handle that was
 *     never returned or whose request already completed: SNOO_MPI_ERR_REQUEST. Waiting for or
 *     testing SNOO_MPI_REQUEST_NULL succeeds at once with an empty status.
 *   - a blocking receive or probe from the calling rank itself (or ANY_SOURCE in a job of one) that
 *     no earlier send to self matches: SNOO_MPI_ERR_ARG at once (it could never complete).
 *
 * Environment: SNOO_SOCKET (the daemon socket; or SNOO_DEVICE=socket:PATH, pci:BDF, sysfs:BDF or
 * vfio:BDF), SNOO_RANK, SNOO_SIZE (1 to 1024), SNOO_TIMEOUT (seconds, at least 1, default 60).
 * snoo-run sets the first three. A value that is set but malformed makes SNOO_MPI_Init fail with
 * SNOO_MPI_ERR_ARG. When SNOO_MPI_Init fails (other than by being called twice), it also prints the
 * reason, as SNOO_MPI_Error_detail has it, as one line on stderr, since C programs often print only
 * the code; SNOO_QUIET=1 (any value but empty or 0) turns that off.
 */
#ifndef SNOO_MPI_H
#define SNOO_MPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int SNOO_MPI_Datatype;
typedef int SNOO_MPI_Comm;
typedef int64_t SNOO_MPI_Request;

/* What a receive got. A truncated receive (SNOO_MPI_ERR_TRUNCATE) still reports its source, tag
 * and the bytes written; a send, SNOO_MPI_REQUEST_NULL or another error gives the empty status
 * (SNOO_MPI_ANY_SOURCE, SNOO_MPI_ANY_TAG, 0 bytes). SNOO_MPI_ERROR is the call's return code. */
typedef struct SNOO_MPI_Status {
    int SNOO_MPI_SOURCE;
    int SNOO_MPI_TAG;
    int SNOO_MPI_ERROR;
    int64_t count_bytes; /* use SNOO_MPI_Get_count */
} SNOO_MPI_Status;

/* Error codes. */
#define SNOO_MPI_SUCCESS 0
#define SNOO_MPI_ERR_BUFFER 1          /* NULL buffer with count > 0 */
#define SNOO_MPI_ERR_COUNT 2           /* negative or too large count (over 2 GiB) */
#define SNOO_MPI_ERR_TYPE 3            /* unknown datatype */
#define SNOO_MPI_ERR_TAG 4             /* negative tag (other than SNOO_MPI_ANY_TAG on receive) */
#define SNOO_MPI_ERR_COMM 5            /* unknown communicator */
#define SNOO_MPI_ERR_RANK 6            /* rank outside the job (SNOO_MPI_ANY_SOURCE on a send) */
#define SNOO_MPI_ERR_REQUEST 7         /* NULL, unknown or already completed request */
#define SNOO_MPI_ERR_TRUNCATE 8        /* the message was longer than the receive buffer */
#define SNOO_MPI_ERR_NOT_INITIALIZED 9 /* before SNOO_MPI_Init or after SNOO_MPI_Finalize */
#define SNOO_MPI_ERR_ALREADY_INITIALIZED 10 /* SNOO_MPI_Init twice */
#define SNOO_MPI_ERR_NO_POOL 11        /* no pool with that name could be joined */
#define SNOO_MPI_ERR_POOL_TOO_SMALL 12 /* the pool cannot hold a job of this size */
#define SNOO_MPI_ERR_TIMEOUT 13        /* no progress within SNOO_TIMEOUT */
#define SNOO_MPI_ERR_PEER_DEAD 14      /* the peer rank's process or VM died */
#define SNOO_MPI_ERR_PROTOCOL 15       /* corrupt data in shared memory */
#define SNOO_MPI_ERR_DEVICE 16         /* daemon or device I/O error */
#define SNOO_MPI_ERR_ARG 17            /* other invalid argument (NULL output, bad environment…) */
#define SNOO_MPI_ERR_INTERN 18         /* internal error (a bug: please report the detail) */
#define SNOO_MPI_ERR_NO_MEM 19         /* SNOO_MPI_Alloc_mem: no room left in this rank's pool heap */
#define SNOO_MPI_ERR_LASTCODE 19

/* Datatypes. */
#define SNOO_MPI_CHAR 1
#define SNOO_MPI_BYTE 2
#define SNOO_MPI_INT 3
#define SNOO_MPI_LONG 4
#define SNOO_MPI_FLOAT 5
#define SNOO_MPI_DOUBLE 6
#define SNOO_MPI_UNSIGNED_CHAR 7
#define SNOO_MPI_UNSIGNED 8
#define SNOO_MPI_UNSIGNED_LONG 9
#define SNOO_MPI_SHORT 10
#define SNOO_MPI_UNSIGNED_SHORT 11
#define SNOO_MPI_LONG_LONG 12
#define SNOO_MPI_UNSIGNED_LONG_LONG 13

#define SNOO_MPI_COMM_WORLD 1
#define SNOO_MPI_ANY_SOURCE (-1)
#define SNOO_MPI_ANY_TAG (-1)
#define SNOO_MPI_REQUEST_NULL ((SNOO_MPI_Request)0)
#define SNOO_MPI_STATUS_IGNORE ((SNOO_MPI_Status *)0)

/* The paper's six calls. */
int SNOO_MPI_Init(const char *name);
int SNOO_MPI_Finalize(void);
int SNOO_MPI_Comm_size(int *size);
int SNOO_MPI_Comm_rank(int *rank);
int SNOO_MPI_Send(const void *message, int count, int dest, int flag, SNOO_MPI_Datatype datatype,
                  SNOO_MPI_Comm comm);
int SNOO_MPI_Recv(void *message, int count, int source, SNOO_MPI_Datatype datatype, int flag,
                  SNOO_MPI_Comm comm);

/* More. */
int SNOO_MPI_Initialized(int *flag);
int SNOO_MPI_Recv_status(void *message, int count, int source, SNOO_MPI_Datatype datatype,
                         int flag, SNOO_MPI_Comm comm, SNOO_MPI_Status *status);
int SNOO_MPI_Isend(const void *message, int count, int dest, int flag, SNOO_MPI_Datatype datatype,
                   SNOO_MPI_Comm comm, SNOO_MPI_Request *request);
int SNOO_MPI_Irecv(void *message, int count, int source, SNOO_MPI_Datatype datatype, int flag,
                   SNOO_MPI_Comm comm, SNOO_MPI_Request *request);
int SNOO_MPI_Wait(SNOO_MPI_Request *request, SNOO_MPI_Status *status);
int SNOO_MPI_Waitall(int count, SNOO_MPI_Request *requests, SNOO_MPI_Status *statuses);
int SNOO_MPI_Test(SNOO_MPI_Request *request, int *flag, SNOO_MPI_Status *status);
int SNOO_MPI_Probe(int source, int flag, SNOO_MPI_Comm comm, SNOO_MPI_Status *status);
int SNOO_MPI_Iprobe(int source, int flag, SNOO_MPI_Comm comm, int *found, SNOO_MPI_Status *status);
int SNOO_MPI_Get_count(const SNOO_MPI_Status *status, SNOO_MPI_Datatype datatype, int *count);

/* Memory in this rank's heap in the shared pool (as MPI_Alloc_mem / MPI_Free_mem; baseptr is a
 * pointer to a pointer, as in MPI). Sends of 32 KiB or more from it are copied once, by the
 * receiver, straight out of the pool (other VMs can read it) instead of through the data ring;
 * from 128 KiB on, when the receive buffer is from Alloc_mem too, sender and receiver each copy
 * half, in parallel.
 * The memory is zeroed. size < 0: SNOO_MPI_ERR_COUNT; NULL baseptr: SNOO_MPI_ERR_ARG; no room:
 * SNOO_MPI_ERR_NO_MEM (start a larger pool: the ranks' heaps share what the channels leave).
 * Free_mem of NULL does nothing; of a pointer not from Alloc_mem, or of a buffer a send is still
 * reading or a sender is still writing into: SNOO_MPI_ERR_ARG, and nothing is freed. Everything is freed by SNOO_MPI_Finalize. */
int SNOO_MPI_Alloc_mem(long size, void *baseptr);
int SNOO_MPI_Free_mem(void *base);

/* Errors. SNOO_MPI_Error_string: a fixed description of a code ("unknown error code" for others);
 * the string is static, never freed. */
const char *SNOO_MPI_Error_string(int errorcode);
/* The full message of the last call that failed on the calling thread, e.g.
 * "SNOO_MPI_Send: invalid rank 5 (job size 2)" or "SNOO_MPI_Init: no pool named \"job\": ...".
 * Successful calls do not clear it. Copies it into buf as a NUL-terminated string of at most len
 * bytes and returns its full length without the NUL, like snprintf (a result >= len means it was
 * cut; SNOO_MPI_Error_detail(NULL, 0) just measures it). Returns 0 and "" if no call has failed on
 * this thread, -1 if len < 0 or buf is NULL with len > 0. Works before Init and after Finalize. */
int SNOO_MPI_Error_detail(char *buf, int len);

#ifdef __cplusplus
}
#endif

#endif /* SNOO_MPI_H */
