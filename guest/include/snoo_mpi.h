/*
 * snoo_mpi.h: the C API of SNOO_MPI, MPI-like messaging between virtual machines through
 * hypervisor shared memory. Link with -lsnoo_mpi (libsnoo_mpi.so or libsnoo_mpi.a; with the static
 * library also -lpthread -ldl -lm), or use `pkg-config --cflags --libs snoo-mpi`.
 *
 * The six calls of the SNOO paper keep its names and argument orders (note that Send and Recv
 * order dest/source, flag (= tag) and datatype differently). Every call returns SNOO_MPI_SUCCESS (0)
 * or an error code below; SNOO_MPI_Error_string describes a code. Calls are not thread-safe against
 * each other beyond being serialised internally (one job per process).
 *
 * Environment: SNOO_SOCKET (the daemon socket; or SNOO_DEVICE=socket:PATH), SNOO_RANK, SNOO_SIZE,
 * SNOO_TIMEOUT (seconds, default 60). snoo-run sets the first three.
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
#define SNOO_MPI_ERR_RANK 6            /* rank outside the job */
#define SNOO_MPI_ERR_REQUEST 7         /* invalid or already completed request */
#define SNOO_MPI_ERR_TRUNCATE 8        /* the message was longer than the receive buffer */
#define SNOO_MPI_ERR_NOT_INITIALIZED 9 /* before SNOO_MPI_Init or after SNOO_MPI_Finalize */
#define SNOO_MPI_ERR_ALREADY_INITIALIZED 10
#define SNOO_MPI_ERR_NO_POOL 11        /* no pool with that name could be joined */
#define SNOO_MPI_ERR_POOL_TOO_SMALL 12 /* the pool cannot hold a job of this size */
#define SNOO_MPI_ERR_TIMEOUT 13        /* no progress within SNOO_TIMEOUT */
#define SNOO_MPI_ERR_PEER_DEAD 14      /* the peer rank's process or VM died */
#define SNOO_MPI_ERR_PROTOCOL 15       /* corrupt data in shared memory */
#define SNOO_MPI_ERR_DEVICE 16         /* daemon or device I/O error */
#define SNOO_MPI_ERR_ARG 17            /* other invalid argument */
#define SNOO_MPI_ERR_INTERN 18         /* internal error */

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
const char *SNOO_MPI_Error_string(int errorcode);

#ifdef __cplusplus
}
#endif

#endif /* SNOO_MPI_H */
