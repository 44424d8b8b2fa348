/*
 * The C client of peerwire's rpcgen interop tests (tests/rpcgen.rs): one
 * call of pwtest.x's program through the stubs `rpcgen -M -l` generates,
 * straight to a port (no rpcbind): clnttcp_create for IPv4, clnt_vc_create
 * for IPv6.
 *
 * usage: client ADDRESS PORT SOURCE SENDSZ echo LEN
 *        client ADDRESS PORT SOURCE SENDSZ caller
 *        client ADDRESS PORT SOURCE SENDSZ creds MACHINE UID GID [GID...]
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
 *
 * A failed call prints libtirpc's error on stderr and exits 3.
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

int main(int argc, char **argv)
{
	CLIENT *clnt;
	int fd, rc = 2;

	if (argc < 6) {
		fprintf(stderr, "usage: %s ADDRESS PORT SOURCE SENDSZ echo LEN|caller|"
				"creds MACHINE UID GID [GID...]\n",
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
	else
		fprintf(stderr, "unknown operation or wrong arguments: %s\n", argv[5]);
	clnt_destroy(clnt);
	return rc;
}
