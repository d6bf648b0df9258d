/* Errors under MPI_ERRORS_RETURN: the class of each bad argument (communicator, rank, tag, count,
 * datatype, root, request, op, buffer), that Error_string describes it, and that a library given
 * bad input (freed or forged handles, NULL where an address is required) returns an error and
 * keeps working: a message sent after all of it still arrives. Only behaviour MPICH shares is
 * checked. */
#include "mpitest.h"

static int handler_calls, handler_class;

static void on_error(MPI_Comm *comm, int *code, ...) {
    handler_calls++;
    MPI_Error_class(*code, &handler_class);
    CHECK(*comm == MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    OK(MPI_Init(&argc, &argv));
    int rank, size;
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    say("errors on %d ranks\n", size);
    MPI_Errhandler eh;
    OK(MPI_Comm_get_errhandler(MPI_COMM_WORLD, &eh));
    CHECK(eh == MPI_ERRORS_ARE_FATAL);
    OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int x = 1, c;

    /* Arguments of a send, one wrong at a time. */
    CHECK(mt_class(MPI_Send(&x, 1, MPI_INT, size, 0, MPI_COMM_WORLD)) == MPI_ERR_RANK);
    CHECK(mt_class(MPI_Send(&x, 1, MPI_INT, -5, 0, MPI_COMM_WORLD)) == MPI_ERR_RANK);
    CHECK(mt_class(MPI_Send(&x, 1, MPI_INT, 0, -1, MPI_COMM_WORLD)) == MPI_ERR_TAG);
    CHECK(mt_class(MPI_Send(&x, -1, MPI_INT, 0, 0, MPI_COMM_WORLD)) == MPI_ERR_COUNT);
    CHECK(mt_class(MPI_Send(&x, 1, MPI_DATATYPE_NULL, 0, 0, MPI_COMM_WORLD)) == MPI_ERR_TYPE);
    CHECK(mt_class(MPI_Send(&x, 1, MPI_INT, 0, 0, MPI_COMM_NULL)) == MPI_ERR_COMM);
    CHECK(mt_class(MPI_Send(NULL, 1, MPI_INT, 0, 0, MPI_COMM_WORLD)) == MPI_ERR_BUFFER);
    CHECK(mt_class(MPI_Recv(&x, 1, MPI_INT, size, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE)) ==
          MPI_ERR_RANK);
    CHECK(mt_class(MPI_Recv(&x, 1, MPI_INT, 0, -7, MPI_COMM_WORLD, MPI_STATUS_IGNORE)) ==
          MPI_ERR_TAG);
    CHECK(mt_class(MPI_Bcast(&x, 1, MPI_INT, size, MPI_COMM_WORLD)) == MPI_ERR_ROOT);
    CHECK(mt_class(MPI_Allreduce(&x, &c, 1, MPI_INT, MPI_OP_NULL, MPI_COMM_WORLD)) == MPI_ERR_OP);
    say("argument classes: ok\n");

    /* A datatype that is not committed. */
    MPI_Datatype t;
    OK(MPI_Type_contiguous(2, MPI_INT, &t));
    CHECK(mt_class(MPI_Send(&x, 1, t, 0, 0, MPI_COMM_WORLD)) == MPI_ERR_TYPE);
    /* A freed communicator is refused (MPICH does not check every kind: a freed datatype or
     * request passes its check there, so SNOO's refusal of those is tested in Rust). */
    OK(MPI_Type_free(&t));
    MPI_Comm d, dfreed;
    OK(MPI_Comm_dup(MPI_COMM_WORLD, &d));
    dfreed = d;
    OK(MPI_Comm_free(&d));
    CHECK(mt_class(MPI_Send(&x, 1, MPI_INT, 0, 0, dfreed)) == MPI_ERR_COMM);
    MPI_Request r = MPI_REQUEST_NULL;
    OK(MPI_Wait(&r, MPI_STATUS_IGNORE)); /* the null request is fine */
    OK(MPI_Irecv(&c, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &r));
    OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CHECK(r == MPI_REQUEST_NULL);
    say("freed handles: refused\n");

    /* NULL where an address is required. */
    CHECK(MPI_Comm_rank(MPI_COMM_WORLD, NULL) != MPI_SUCCESS);
    CHECK(MPI_Comm_size(MPI_COMM_WORLD, NULL) != MPI_SUCCESS);
    CHECK(MPI_Irecv(&c, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, NULL) != MPI_SUCCESS);
    CHECK(MPI_Comm_dup(MPI_COMM_WORLD, NULL) != MPI_SUCCESS);
    CHECK(MPI_Type_contiguous(2, MPI_INT, NULL) != MPI_SUCCESS);
    say("NULL outputs: refused\n");

    /* Error_string and Error_class of a returned code. */
    int code = MPI_Send(&x, 1, MPI_INT, 0, -1, MPI_COMM_WORLD), len = 0;
    char text[MPI_MAX_ERROR_STRING];
    OK(MPI_Error_string(code, text, &len));
    CHECK(len > 0 && len < MPI_MAX_ERROR_STRING && (int)strlen(text) == len);
    OK(MPI_Error_class(code, &c));
    CHECK(c == MPI_ERR_TAG);
    OK(MPI_Error_string(MPI_SUCCESS, text, &len));
    CHECK(len > 0);

    /* A user error handler is called with the communicator and the code. */
    MPI_Errhandler mine;
    OK(MPI_Comm_create_errhandler(on_error, &mine));
    OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, mine));
    MPI_Send(&x, 1, MPI_INT, 0, -1, MPI_COMM_WORLD);
    CHECK(handler_calls == 1 && handler_class == MPI_ERR_TAG);
    OK(MPI_Errhandler_free(&mine));
    OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    say("user error handler: called\n");

    /* After all of it, the library still works: a ring message arrives. */
    int next = (rank + 1) % size, prev = (rank + size - 1) % size, v = rank, w = -1;
    OK(MPI_Sendrecv(&v, 1, MPI_INT, next, 0, &w, 1, MPI_INT, prev, 0, MPI_COMM_WORLD,
                    MPI_STATUS_IGNORE));
    CHECK(w == prev);
    OK(MPI_Barrier(MPI_COMM_WORLD));
    say("errors: ok\n");
    OK(MPI_Finalize());
    int fin = 0;
    OK(MPI_Finalized(&fin));
    CHECK(fin);
    return 0;
}
