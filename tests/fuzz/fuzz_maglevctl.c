/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libFuzzer harness: maglevctl's command line. The input is argv, NUL-separated; it runs through
 * command_argv (options before the command) and, for online commands, online_parse (argv to
 * a request), which is everything maglevctl does before it opens a file or a socket.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maglevctl/online.h"
#include "maglevctl/command.h"

#define FUZZ_INPUT_MAX 4096u /* bytes of one command line */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[FUZZ_INPUT_MAX + 1], err[512], *argv[COMMAND_ARGS_MAX + 2],
	    *args[COMMAND_ARGS_MAX];
	struct online_args a;
	int argc = 0, n, rc;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "maglevctl";
	/* Up to one argument more than maglevctl takes, so that the limit is exercised too. */
	for (char *p = buf; p < buf + size && argc < COMMAND_ARGS_MAX + 1; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	rc = command_argv(argc, argv, args, &n, err, sizeof(err));
	if (rc != 0) {
		if (rc != COMMAND_USAGE || !err[0])
			abort(); /* a usage error always says why */
		return 0;
	}
	if (n < 1 || n > argc - 1)
		abort();
	rc = online_parse(n, args, &a, err, sizeof(err));
	if (rc == 0 && !a.help && !json_is_object(a.req))
		abort(); /* parsed means a request to send */
	if (rc != 0 && (rc != COMMAND_USAGE || a.req))
		abort();
	json_decref(a.req);
	return 0;
}
