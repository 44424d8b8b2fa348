/*
 * The C client of peerwire's rpcgen interop tests (tests/rpcgen.rs): one
 * call of pwtest.x's program through the stubs `rpcgen -M -l` generates,
 * straight to a port (no rpcbind): clnttcp_create for IPv4, clnt_vc_create
 * for IPv6.
 *
 * usage: client ADDRESS PORT SOURCE SENDSZ echo LEN
 *        client ADDRESS PORT SOURCE SENDSZ caller
 *        client ADDRESS PORT SOURCE SENDSZ creds MACHINE UID GID [GID...]
 *        client ADDRESS PORT SOURCE SENDSZ name [HEX...]
 *        client ADDRESS PORT SOURCE SENDSZ rich
 *        client ADDRESS PORT SOURCE SENDSZ raw PROG VERS PROC HEX
 *   ADDRESS, PORT  the server, a numeric IPv4 or IPv6 address
 *   SOURCE         the address the socket is bound to before it connects
 *   SENDSZ         the send buffer size (0: libtirpc's default, 64 KiB); a
 *                  call goes out in fragments of at most SENDSZ - 4 bytes
 *
 * echo    sends LEN bytes of the pattern (i * 7 + 3) mod 256 and prints
 *         "echo sent LEN received N equal|different"
 * caller  prints "caller saw HOST PORT" (the server's answer) and
 *         "local HOST PORT" (this socket's own address)
 * creds   calls with AUTH_SYS credentials (authunix_create) and prints the
 *         server's answer: "creds flavor F stamp S machine M uid U gid G
 *         gids A,B,..."
 * name    sends each HEX (the string's bytes in hex, any but NUL; empty
 *         for the empty string) and prints "name sent HEX received HEX"
 * rich    sends the pwtest_rich of every (arm, list) pair: arm 0 to 3 of
 *         pwtest_value, linked lists of 0, 1 and 100 nodes, built as
 *         rich_value() below says, and prints "rich ARM NODES equal" or
 *         "... different" as the echo's XDR matches what was sent
 * raw     calls PROG VERS PROC (numbers, 0x for hex) with the bytes HEX as
 *         its arguments, whole (a multiple of 4 bytes), through clnt_call
 *         with an xdrproc of its own; prints "status N" (the clnt_stat),
 *         "error TEXT" (clnt_sperrno) and for a version mismatch
 *         "versions LOW HIGH"; then, on the same connection, echoes 3
 *         bytes with pwtest.x's numbers and prints "then echo ..." as echo
 *
 * A failed call (but raw's) prints libtirpc's error on stderr and exits 3.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pwtest.h"

/* A numeric address and port. */
static socklen_t parse(const char *host, unsigned port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1)
			return sizeof *sin6;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &sin->sin_addr) == 1)
			return sizeof *sin;
	}
	fprintf(stderr, "not a numeric address: %s\n", host);
	exit(2);
}

static void print_addr(const char *label, const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN];
	unsigned port;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		port = ntohs(sin6->sin6_port);
	}
	printf("%s %s %u\n", label, host, port);
}

/* A client on a socket bound to SOURCE and connected to ADDRESS:PORT. */
static CLIENT *connect_to(const char *address, unsigned port, const char *source, u_int sendsz,
			  int *fd)
{
	struct sockaddr_storage server, local;
	socklen_t server_len = parse(address, port, &server);
	socklen_t local_len = parse(source, 0, &local);
	CLIENT *clnt;

	*fd = socket(server.ss_family, SOCK_STREAM, 0);
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&local, local_len) < 0) {
		fprintf(stderr, "binding %s: %s\n", source, strerror(errno));
		exit(1);
	}
	if (server.ss_family == AF_INET) {
		/* A port is given, so no portmapper is asked. */
		clnt = clnttcp_create((struct sockaddr_in *)&server, PWTEST_PROG, PWTEST_VERS, fd,
				      sendsz, 0);
	} else {
		struct netbuf raddr = { .maxlen = server_len, .len = server_len, .buf = &server };
		clnt = clnt_vc_create(*fd, &raddr, PWTEST_PROG, PWTEST_VERS, sendsz, 0);
	}
	if (clnt == NULL) {
		clnt_pcreateerror("client");
		exit(1);
	}
	return clnt;
}

static void check(enum clnt_stat status, CLIENT *clnt)
{
	if (status != RPC_SUCCESS) {
		clnt_perror(clnt, "call failed");
		exit(3);
	}
}

static int echo(CLIENT *clnt, u_int len)
{
	pwtest_blob arg, res;

	arg.pwtest_blob_len = len;
	arg.pwtest_blob_val = malloc(len + 1);
	if (arg.pwtest_blob_val == NULL)
		return 1;
	for (u_int i = 0; i < len; i++)
		arg.pwtest_blob_val[i] = (char)((i * 7 + 3) & 0xff);
	memset(&res, 0, sizeof res);
	check(pwtest_echo_1(&arg, &res, clnt), clnt);
	int equal = res.pwtest_blob_len == len &&
		    memcmp(res.pwtest_blob_val, arg.pwtest_blob_val, len) == 0;
	printf("echo sent %u received %u %s\n", len, res.pwtest_blob_len,
	       equal ? "equal" : "different");
	xdr_free((xdrproc_t)xdr_pwtest_blob, (caddr_t)&res);
	free(arg.pwtest_blob_val);
	return 0;
}

static int caller(CLIENT *clnt, int fd)
{
	pwtest_caller res;
	struct sockaddr_storage local;
	socklen_t len = sizeof local;

	memset(&res, 0, sizeof res);
	check(pwtest_caller_1(NULL, &res, clnt), clnt);
	printf("caller saw %s %u\n", res.addr, res.port);
	if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) {
		fprintf(stderr, "getsockname: %s\n", strerror(errno));
		return 1;
	}
	print_addr("local", &local);
	xdr_free((xdrproc_t)xdr_pwtest_caller, (caddr_t)&res);
	return 0;
}

static int creds(CLIENT *clnt, char *machine, int ngids, char **gid_args, char *uid, char *gid)
{
	uid_t gids[16];
	pwtest_creds res;

	if (ngids > 16) {
		fprintf(stderr, "at most 16 groups\n");
		return 2;
	}
	for (int i = 0; i < ngids; i++)
		gids[i] = strtoul(gid_args[i], NULL, 10);
	auth_destroy(clnt->cl_auth);
	clnt->cl_auth = authunix_create(machine, strtoul(uid, NULL, 10), strtoul(gid, NULL, 10),
					ngids, gids);
	if (clnt->cl_auth == NULL) {
		fprintf(stderr, "authunix_create failed\n");
		return 1;
	}
	memset(&res, 0, sizeof res);
	check(pwtest_creds_1(NULL, &res, clnt), clnt);
	printf("creds flavor %u stamp %u machine %s uid %u gid %u gids ", res.flavor, res.stamp,
	       res.machine, res.uid, res.gid);
	for (u_int i = 0; i < res.gids.gids_len; i++)
		printf("%s%u", i ? "," : "", res.gids.gids_val[i]);
	printf("\n");
	xdr_free((xdrproc_t)xdr_pwtest_creds, (caddr_t)&res);
	return 0;
}

/* A hex digit's value, or -1. */
static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* HEX's bytes in a new buffer of *len bytes (plus a NUL); exits on bad hex. */
static char *unhex(const char *hex, u_int *len)
{
	size_t n = strlen(hex);
	char *out = malloc(n / 2 + 1);

	if (out == NULL || n % 2 != 0) {
		fprintf(stderr, "not hex: %s\n", hex);
		exit(2);
	}
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fprintf(stderr, "not hex: %s\n", hex);
			exit(2);
		}
		out[i] = (char)(hi << 4 | lo);
	}
	out[n / 2] = '\0';
	*len = n / 2;
	return out;
}

static void print_hex(const char *s)
{
	for (; *s != '\0'; s++)
		printf("%02x", (unsigned char)*s);
}

static int name(CLIENT *clnt, int count, char **hexes)
{
	for (int i = 0; i < count; i++) {
		u_int len;
		pwtest_name arg = unhex(hexes[i], &len), res = NULL;

		if (strlen(arg) != len) {
			fprintf(stderr, "a pwtest_name cannot hold NUL: %s\n", hexes[i]);
			return 2;
		}
		check(pwtest_name_1(&arg, &res, clnt), clnt);
		printf("name sent %s received ", hexes[i]);
		print_hex(res);
		printf("\n");
		xdr_free((xdrproc_t)xdr_pwtest_name, (caddr_t)&res);
		free(arg);
	}
	return 0;
}

/* The node counts and the bound of `many` that rich() tries. */
static const u_int rich_lists[3] = { 0, 1, 100 };
#define RICH_MANY_MAX 100

/* The pwtest_rich of arm ARM (pwtest_kind) and list LIST (an index into
   rich_lists), as tests/rpcgen/generated_server.rs rebuilds it:
     value   NONE; NUMBER -0x123456789abc; TEXT "t\xe9xt" (not UTF-8);
             POINT {-7, INT32_MAX}
     nodes   rich_lists[LIST] nodes, node i with id i * 3 + 1
     fixed   {ARM, nodes, 0xffffffff}
     many    min(ARM * 33 + LIST, 100) values, value k = k << 40 | (k + ARM)
     maybe   "\xffmaybe" when ARM + LIST is odd, else absent
     flag    LIST == 2
     real    -1.5 * ARM + 0.25 * LIST
   Freed with free_rich(). */
static void rich_value(u_int arm, u_int list, pwtest_rich *v)
{
	static char text[] = "t\xe9xt";
	static char maybe[] = "\xffmaybe";
	static pwtest_name maybe_name = maybe;
	u_int nodes = rich_lists[list];
	u_int many = arm * 33 + list;

	memset(v, 0, sizeof *v);
	v->value.kind = (pwtest_kind)arm;
	switch (arm) {
	case PWTEST_NUMBER:
		v->value.pwtest_value_u.number = -0x123456789abcLL;
		break;
	case PWTEST_TEXT:
		v->value.pwtest_value_u.text = text;
		break;
	case PWTEST_POINT:
		v->value.pwtest_value_u.point[0] = -7;
		v->value.pwtest_value_u.point[1] = 0x7fffffff;
		break;
	}
	/* Built from the tail, so the first node has id 1. */
	for (u_int i = nodes; i-- > 0;) {
		pwtest_node *node = calloc(1, sizeof *node);
		if (node == NULL)
			exit(1);
		node->id = i * 3 + 1;
		node->next = v->nodes;
		v->nodes = node;
	}
	v->fixed[0] = arm;
	v->fixed[1] = nodes;
	v->fixed[2] = 0xffffffffu;
	v->many.many_len = many < RICH_MANY_MAX ? many : RICH_MANY_MAX;
	v->many.many_val = calloc(v->many.many_len + 1, sizeof(u_quad_t));
	if (v->many.many_val == NULL)
		exit(1);
	for (u_int k = 0; k < v->many.many_len; k++)
		v->many.many_val[k] = (u_quad_t)k << 40 | (k + arm);
	v->maybe = (arm + list) % 2 == 1 ? &maybe_name : NULL;
	v->flag = list == 2;
	v->real = -1.5 * arm + 0.25 * list;
}

static void free_rich(pwtest_rich *v)
{
	while (v->nodes != NULL) {
		pwtest_node *next = v->nodes->next;
		free(v->nodes);
		v->nodes = next;
	}
	free(v->many.many_val);
}

/* A pwtest_rich as libtirpc's XDR encodes it, in a new buffer of *len bytes. */
static char *encode_rich(pwtest_rich *v, u_int *len)
{
	XDR xdrs;
	char *buf;

	*len = xdr_sizeof((xdrproc_t)xdr_pwtest_rich, v);
	buf = malloc(*len + 4);
	if (buf == NULL)
		exit(1);
	xdrmem_create(&xdrs, buf, *len + 4, XDR_ENCODE);
	if (!xdr_pwtest_rich(&xdrs, v)) {
		fprintf(stderr, "encoding a pwtest_rich failed\n");
		exit(1);
	}
	xdr_destroy(&xdrs);
	return buf;
}

static int rich(CLIENT *clnt)
{
	for (u_int arm = PWTEST_NONE; arm <= PWTEST_POINT; arm++) {
		for (u_int list = 0; list < 3; list++) {
			pwtest_rich arg, res;
			u_int sent_len, got_len;

			rich_value(arm, list, &arg);
			memset(&res, 0, sizeof res);
			check(pwtest_rich_1(&arg, &res, clnt), clnt);
			char *sent = encode_rich(&arg, &sent_len);
			char *got = encode_rich(&res, &got_len);
			int equal = sent_len == got_len && memcmp(sent, got, sent_len) == 0;
			printf("rich %u %u %s\n", arm, rich_lists[list],
			       equal ? "equal" : "different");
			free(sent);
			free(got);
			xdr_free((xdrproc_t)xdr_pwtest_rich, (caddr_t)&res);
			free_rich(&arg);
		}
	}
	return 0;
}

/* Arguments written as they are: the bytes of an opaque whose length is a
   multiple of 4 (so xdr_opaque adds no padding). */
struct raw_args {
	char *bytes;
	u_int len;
};

static bool_t xdr_raw_args(XDR *xdrs, struct raw_args *args)
{
	return xdr_opaque(xdrs, args->bytes, args->len);
}

/* No results read (xdr_void's type does not match an xdrproc_t's). */
static bool_t xdr_no_results(XDR *xdrs, void *results)
{
	(void)xdrs;
	(void)results;
	return TRUE;
}

static int raw(CLIENT *clnt, char **argv)
{
	rpcprog_t prog = strtoul(argv[0], NULL, 0);
	rpcvers_t vers = strtoul(argv[1], NULL, 0);
	rpcproc_t proc = strtoul(argv[2], NULL, 0);
	struct timeval timeout = { 60, 0 };
	struct raw_args args;
	struct rpc_err err;
	enum clnt_stat status;

	args.bytes = unhex(argv[3], &args.len);
	if (args.len % 4 != 0) {
		fprintf(stderr, "raw arguments must be a multiple of 4 bytes\n");
		return 2;
	}
	clnt_control(clnt, CLSET_PROG, (char *)&prog);
	clnt_control(clnt, CLSET_VERS, (char *)&vers);
	status = clnt_call(clnt, proc, (xdrproc_t)xdr_raw_args, (caddr_t)&args,
			   (xdrproc_t)xdr_no_results, NULL, timeout);
	printf("status %d\n", (int)status);
	printf("error %s\n", clnt_sperrno(status));
	clnt_geterr(clnt, &err);
	if (status == RPC_PROGVERSMISMATCH)
		printf("versions %lu %lu\n", (unsigned long)err.re_vers.low,
		       (unsigned long)err.re_vers.high);
	free(args.bytes);

	/* The connection goes on: pwtest.x's own numbers again. */
	prog = PWTEST_PROG;
	vers = PWTEST_VERS;
	clnt_control(clnt, CLSET_PROG, (char *)&prog);
	clnt_control(clnt, CLSET_VERS, (char *)&vers);
	printf("then ");
	return echo(clnt, 3);
}

int main(int argc, char **argv)
{
	CLIENT *clnt;
	int fd, rc = 2;

	if (argc < 6) {
		fprintf(stderr, "usage: %s ADDRESS PORT SOURCE SENDSZ echo LEN|caller|"
				"creds MACHINE UID GID [GID...]|name [HEX...]|rich|"
				"raw PROG VERS PROC HEX\n",
			argv[0]);
		return 2;
	}
	clnt = connect_to(argv[1], strtoul(argv[2], NULL, 10), argv[3], strtoul(argv[4], NULL, 10),
			  &fd);
	if (strcmp(argv[5], "echo") == 0 && argc == 7)
		rc = echo(clnt, strtoul(argv[6], NULL, 10));
	else if (strcmp(argv[5], "caller") == 0 && argc == 6)
		rc = caller(clnt, fd);
	else if (strcmp(argv[5], "creds") == 0 && argc >= 9)
		rc = creds(clnt, argv[6], argc - 9, argv + 9, argv[7], argv[8]);
	else if (strcmp(argv[5], "name") == 0)
		rc = name(clnt, argc - 6, argv + 6);
	else if (strcmp(argv[5], "rich") == 0 && argc == 6)
		rc = rich(clnt);
	else if (strcmp(argv[5], "raw") == 0 && argc == 10)
		rc = raw(clnt, argv + 6);
	else
		fprintf(stderr, "unknown operation or wrong arguments: %s\n", argv[5]);
	clnt_destroy(clnt);
	return rc;
}
