/* The per-viewer inner loop of the viewers' send path (lmserver/media/fastsend.py), in C.
 *
 * One call sends one program packet to one viewer: its RTP packets are assembled back to back in a
 * scratch buffer (12-byte header from the viewer's state, its header extensions, the shared payload),
 * each protected in place with the viewer's libsrtp session (the srtp_protect of pylibsrtp's own
 * libsrtp, passed in as a function pointer: the same library, keys and rollover counter as the Python
 * path), then sent on the viewer's UDP socket: a run of equal-size datagrams (the FU-A fragments of one
 * NAL unit, a shorter last one allowed) in one sendmsg with UDP segmentation offload, a lone datagram
 * with sendto. fastsend.py keeps a pure-Python path doing the same; this module is optional (built when
 * a C compiler is present) and only makes the loop cheaper.
 *
 * The input is the server's own (the program's payloads, the viewer's negotiated state), not a peer's.
 * Every length is still checked against the buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define SCRATCH_SIZE (2 * 1024 * 1024)
#define MAX_DATAGRAMS 4096
#define MAX_RTP 1500       /* one RTP packet before SRTP */
#define TRAILER 144        /* SRTP_MAX_TRAILER_LEN: room for the tag (and MKI) srtp_protect appends */
#define GSO_SEGMENTS 64
#define GSO_BYTES 60000

typedef int (*protect_fn)(void *ctx, void *rtp, int *len);

static unsigned char scratch[SCRATCH_SIZE];
static int offsets[MAX_DATAGRAMS + 1];

static int is_refusal(int err) {
    return err == EINVAL || err == EIO || err == EOPNOTSUPP || err == ENOPROTOOPT || err == EMSGSIZE;
}

/* sendto of datagram i; 0 or errno */
static int send_one(int fd, const struct sockaddr *addr, socklen_t alen, int i) {
    ssize_t r;
    do {
        r = sendto(fd, scratch + offsets[i], (size_t)(offsets[i + 1] - offsets[i]), 0, addr, alen);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? errno : 0;
}

/* datagrams [first, first + count) in one sendmsg with UDP_SEGMENT; 0 or errno */
static int send_gso(int fd, const struct sockaddr *addr, socklen_t alen, int first, int count) {
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct iovec iov;
    struct msghdr msg;
    struct cmsghdr *cm;
    uint16_t seg = (uint16_t)(offsets[first + 1] - offsets[first]);
    ssize_t r;

    memset(&msg, 0, sizeof(msg));
    memset(&control, 0, sizeof(control));
    iov.iov_base = scratch + offsets[first];
    iov.iov_len = (size_t)(offsets[first + count] - offsets[first]);
    msg.msg_name = (void *)addr;
    msg.msg_namelen = alen;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    do {
        r = sendmsg(fd, &msg, 0);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? errno : 0;
}

/* The datagrams from index first on, as a list of bytes (for asyncio's transport to buffer). */
static PyObject *unsent(int first, int n) {
    PyObject *list = PyList_New(n - first);
    if (list == NULL)
        return NULL;
    for (int i = first; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)scratch + offsets[i], offsets[i + 1] - offsets[i]);
        if (b == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i - first, b);
    }
    return list;
}

static int as_u32(PyObject *o, unsigned long *out) {
    unsigned long v = PyLong_AsUnsignedLongMask(o);
    if (v == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

PyDoc_STRVAR(send_rtp_doc,
"send_rtp(fd, sockaddr, gso, ctx, protect, b0, pt, seq, ts, ssrc, ext, payloads) -> int | tuple\n"
"\n"
"Protect and send one program packet's RTP payloads to one viewer. fd: the UDP socket; sockaddr: the\n"
"packed struct sockaddr of the viewer's address; gso: use UDP segmentation offload for runs of equal\n"
"sizes; ctx: the libsrtp srtp_t; protect: the address of srtp_protect; b0: the first header byte\n"
"(version, extension bit); pt: the payload type (the marker bit is set on the last packet); seq: the\n"
"first sequence number; ts, ssrc: the header's; ext: the header extension bytes; payloads: a list or\n"
"tuple of bytes. Returns the payload octets sent, or (errno, gso_refused, unsent) when a send failed: unsent is\n"
"the protected datagrams not sent (from the failed one on), for the caller to hand to asyncio's\n"
"transport. gso_refused: the kernel refused segmentation offload (the runs went datagram by datagram).\n"
"ValueError when a packet exceeds the buffers (nothing was protected then), RuntimeError when\n"
"srtp_protect failed.");

static PyObject *send_rtp(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    long fd;
    int gso;
    unsigned long b0, pt, seq, ts, ssrc;
    uintptr_t ctx, fn;
    char *sa, *ext;
    Py_ssize_t salen, extlen, n, i;
    PyObject *payloads;
    protect_fn protect;
    size_t off = 0, octets = 0;
    int refused = 0, err = 0, failed_at = -1;

    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "send_rtp takes 12 arguments");
        return NULL;
    }
    fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (PyBytes_AsStringAndSize(args[1], &sa, &salen) < 0)
        return NULL;
    gso = PyObject_IsTrue(args[2]);
    if (gso < 0)
        return NULL;
    ctx = (uintptr_t)PyLong_AsVoidPtr(args[3]);
    if (PyErr_Occurred())
        return NULL;
    fn = (uintptr_t)PyLong_AsVoidPtr(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (as_u32(args[5], &b0) < 0 || as_u32(args[6], &pt) < 0 || as_u32(args[7], &seq) < 0 ||
        as_u32(args[8], &ts) < 0 || as_u32(args[9], &ssrc) < 0)
        return NULL;
    if (PyBytes_AsStringAndSize(args[10], &ext, &extlen) < 0)
        return NULL;
    payloads = args[11];
    if (!PyList_Check(payloads) && !PyTuple_Check(payloads)) {
        PyErr_SetString(PyExc_TypeError, "payloads must be a list or tuple of bytes");
        return NULL;
    }
    if (ctx == 0 || fn == 0) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return NULL;
    }
    if (salen < (Py_ssize_t)sizeof(sa_family_t) || salen > (Py_ssize_t)sizeof(struct sockaddr_storage)) {
        PyErr_SetString(PyExc_ValueError, "sockaddr has a bad length");
        return NULL;
    }
    n = PySequence_Fast_GET_SIZE(payloads);
    if (n > MAX_DATAGRAMS) {
        PyErr_SetString(PyExc_ValueError, "too many RTP packets for one program packet");
        return NULL;
    }
    /* check every size before protecting anything: an error leaves the SRTP state untouched */
    for (i = 0; i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(payloads, i);
        Py_ssize_t len;
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "payloads must be a list or tuple of bytes");
            return NULL;
        }
        len = PyBytes_GET_SIZE(p);
        if (12 + extlen + len > MAX_RTP) {
            PyErr_Format(PyExc_ValueError, "an RTP packet of %zd bytes exceeds %d", 12 + extlen + len, MAX_RTP);
            return NULL;
        }
        off += (size_t)(12 + extlen + len + TRAILER);
        octets += (size_t)len;
    }
    if (off > SCRATCH_SIZE) {
        PyErr_SetString(PyExc_ValueError, "the program packet exceeds the send buffer");
        return NULL;
    }
    protect = (protect_fn)fn;
    off = 0;
    for (i = 0; i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(payloads, i);
        Py_ssize_t len = PyBytes_GET_SIZE(p);
        unsigned char *h = scratch + off;
        unsigned long s = (seq + (unsigned long)i) & 0xFFFF;
        int total = (int)(12 + extlen + len);
        h[0] = (unsigned char)b0;
        h[1] = (unsigned char)((pt & 0x7F) | (i == n - 1 ? 0x80 : 0));
        h[2] = (unsigned char)(s >> 8);
        h[3] = (unsigned char)s;
        h[4] = (unsigned char)(ts >> 24);
        h[5] = (unsigned char)(ts >> 16);
        h[6] = (unsigned char)(ts >> 8);
        h[7] = (unsigned char)ts;
        h[8] = (unsigned char)(ssrc >> 24);
        h[9] = (unsigned char)(ssrc >> 16);
        h[10] = (unsigned char)(ssrc >> 8);
        h[11] = (unsigned char)ssrc;
        memcpy(h + 12, ext, (size_t)extlen);
        memcpy(h + 12 + extlen, PyBytes_AS_STRING(p), (size_t)len);
        if (protect((void *)ctx, h, &total) != 0 || total < 12 || total > 12 + extlen + len + TRAILER) {
            /* the packets before this one are protected but not sent: the viewer sees a gap (NACK) */
            PyErr_SetString(PyExc_RuntimeError, "srtp_protect failed");
            return NULL;
        }
        offsets[i] = (int)off;
        off += (size_t)total;
    }
    offsets[n] = (int)off;

    /* send: runs of equal sizes (a shorter last one allowed). The GIL is kept: the sends take microseconds,
       and giving it up would let another thread hold it for a switch interval (5 ms) meanwhile. It also
       guards the static scratch buffer. */
    i = 0;
    while (i < n) {
        int first = (int)i, count = 1;
        int seg = offsets[i + 1] - offsets[i];
        if (gso && !refused) {
            while (first + count < n && count < GSO_SEGMENTS) {
                int size = offsets[first + count + 1] - offsets[first + count];
                if (size > seg || offsets[first + count + 1] - offsets[first] > GSO_BYTES)
                    break;
                count++;
                if (size < seg)
                    break;
            }
        }
        if (count > 1) {
            err = send_gso((int)fd, (const struct sockaddr *)sa, (socklen_t)salen, first, count);
            if (err && is_refusal(err)) {
                refused = 1;
                err = 0;
                count = 1; /* from this datagram on, one by one */
                continue;
            }
        } else {
            err = send_one((int)fd, (const struct sockaddr *)sa, (socklen_t)salen, first);
        }
        if (err) {
            failed_at = first;
            break;
        }
        i = first + count;
    }

    if (failed_at < 0 && !refused)
        return PyLong_FromSize_t(octets);
    {
        PyObject *rest = failed_at < 0 ? PyList_New(0) : unsent(failed_at, (int)n);
        if (rest == NULL)
            return NULL;
        return Py_BuildValue("(iiN)", err, refused, rest);
    }
}

static PyMethodDef methods[] = {
    {"send_rtp", (PyCFunction)(void (*)(void))send_rtp, METH_FASTCALL, send_rtp_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lmserver.media._sendloop",
    "The per-viewer inner loop of lmserver's viewers' send path (see fastsend.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__sendloop(void) {
    return PyModule_Create(&module);
}
