/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Whom maglevctl talks to: the socket's directory chain, the socket's owner and the listening
 * process's uid are checked before a request is sent; maglevd creates and checks its directory.
 * The owner and uid cases need root (chown, setuid) and are skipped without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "control/ctlsock.h"

#define OTHER_UID 65534 /* nobody: the user who tries to pass for maglevd */

struct fixture {
	char dir[64];  /* mkdtemp, 0700 */
	char sub[80];  /* dir/run: the socket's directory, made by ctl_socket_dir_prepare */
	char sock[96]; /* sub/ctl.sock */
	struct ctl_server *srv;
	atomic_int calls;
	atomic_bool stop;
	pthread_t thread;
};

static json_t *handler(void *ctx, const struct ctl_request *req, char *err, size_t errlen)
{
	struct fixture *f = ctx;

	(void)req;
	(void)err;
	(void)errlen;
	atomic_fetch_add(&f->calls, 1);
	return json_pack("{s:b}", "answered", 1);
}

static void *serve(void *arg)
{
	struct fixture *f = arg;

	while (!atomic_load(&f->stop))
		if (ctl_server_dispatch(f->srv, 20) < 0)
			break;
	return NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[CTL_ERR_MAX];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/maglev-trust-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sub, sizeof(f->sub), "%s/run", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/ctl.sock", f->sub);
	umask(022);
	if (ctl_socket_dir_prepare(f->sock, err, sizeof(err)) < 0)
		fail_msg("ctl_socket_dir_prepare: %s", err);
	assert_int_equal(ctl_server_open(&f->srv, f->sock, 0, handler, f), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	ctl_server_close(f->srv);
	rmdir(f->sub);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* One status request to path: ctl_call's return, the error in err. */
static int call(const char *path, char *err)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *resp = NULL;
	int rc = ctl_call(path, req, &resp, 2000, err, CTL_ERR_MAX);

	json_decref(req);
	json_decref(resp);
	return rc;
}

/* maglevd makes its directory 0755; one that others may write is refused on both sides. */
static void test_directory(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX], other[128];
	struct stat st;

	assert_int_equal(stat(f->sub, &st), 0);
	assert_int_equal(st.st_mode & 07777, CTL_DIR_MODE);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(call(f->sock, err), 0);
	assert_int_equal(atomic_load(&f->calls), 1);

	static const struct {
		mode_t mode;
		bool ok;
	} modes[] = {
	    {0777, false}, /* anyone can rename ctl.sock away and put theirs there */
	    {0775, false}, /* the group can */
	    {01777, true}, /* sticky like /tmp: others cannot touch what is ours */
	    {0700, true},
	};
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		int want = modes[i].ok ? 0 : -EPERM;

		assert_int_equal(chmod(f->sub, modes[i].mode), 0);
		if (call(f->sock, err) != want)
			fail_msg("mode %04o: ctl_call gave '%s'", (unsigned)modes[i].mode, err);
		if (!modes[i].ok)
			assert_non_null(strstr(err, "lets others replace the control socket"));
		snprintf(other, sizeof(other), "%s/other.sock", f->sub);
		assert_int_equal(ctl_socket_dir_prepare(other, err, sizeof(err)), want);
	}
	assert_int_equal(atomic_load(&f->calls), 3); /* the refused calls sent nothing */

	/* A directory above the socket's counts as much as its own. */
	assert_int_equal(chmod(f->sub, 0755), 0);
	assert_int_equal(chmod(f->dir, 0777), 0);
	assert_int_equal(call(f->sock, err), -EPERM);
	assert_non_null(strstr(err, f->dir));
	assert_int_equal(chmod(f->dir, 0700), 0);

	/* Not a socket, or none at all. */
	assert_int_equal(call(f->sub, err), -ENOTSOCK);
	snprintf(other, sizeof(other), "%s/none.sock", f->sub);
	assert_int_equal(call(other, err), -ENOENT);
	assert_non_null(strstr(err, "is maglevd running?"));
}

/* A socket, or a directory, that another user owns is not maglevd's. */
static void test_owner(void **state)
{
	struct fixture *f = *state;
	char err[CTL_ERR_MAX];

	if (geteuid() != 0)
		skip();
	assert_int_equal(chown(f->sock, OTHER_UID, OTHER_UID), 0);
	assert_int_equal(call(f->sock, err), -EPERM);
	assert_non_null(strstr(err, "owned by uid 65534"));
	assert_int_equal(chown(f->sock, 0, 0), 0);
	assert_int_equal(chown(f->sub, OTHER_UID, OTHER_UID), 0);
	assert_int_equal(call(f->sock, err), -EPERM);
	assert_int_equal(chown(f->sub, 0, 0), 0);
	assert_int_equal(call(f->sock, err), 0);
}

/*
 * An impostor that got its socket in place (bound as root, then listening as another user, which
 * is whose credentials a connecting client sees) is refused after connect, before any request.
 */
static void test_peer(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char err[CTL_ERR_MAX], imp[100], c;
	int sync[2], status;
	pid_t child;

	if (geteuid() != 0)
		skip();
	snprintf(imp, sizeof(imp), "%s/impostor.sock", f->sub);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", imp);
	assert_int_equal(pipe(sync), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0), cfd;

		alarm(10);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
		    setgid(OTHER_UID) < 0 || setuid(OTHER_UID) < 0 || listen(fd, 4) < 0)
			_exit(1);
		if (write(sync[1], "r", 1) != 1)
			_exit(1);
		cfd = accept(fd, NULL, NULL);
		c = 0;
		/* Whatever the client sent before it hung up: nothing, if the check works. */
		_exit(cfd >= 0 && read(cfd, &c, 1) == 0 ? 0 : 2);
	}
	close(sync[1]);
	assert_int_equal(read(sync[0], &c, 1), 1);
	close(sync[0]);
	assert_int_equal(call(imp, err), -EPERM);
	assert_non_null(strstr(err, "running as uid 65534, not root"));
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0); /* it got no request */
	unlink(imp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer, setup, teardown),
	};

	return cmocka_run_group_tests_name("ctl_trust", tests, NULL, NULL);
}
