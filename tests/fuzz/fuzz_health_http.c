/* SPDX-License-Identifier: GPL-2.0-only */
/* libFuzzer harness: the HTTP health check's status line parser, on an input and its prefixes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maglevd/health.h"

#define HTTP_STATUS_MIN 100 /* the range the parser may return (RFC 9110 section 15) */
#define HTTP_STATUS_MAX 599
#define CODE_AT         9u /* the status digits in "HTTP/1.x NNN" */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	int whole = health_http_status_parse(buf, size);

	if (whole != -EAGAIN && whole != -EBADMSG &&
	    (whole < HTTP_STATUS_MIN || whole > HTTP_STATUS_MAX))
		abort();
	/* Undecided means no line end was reached: there is none in the input. */
	if (whole == -EAGAIN && memchr(buf, '\n', size))
		abort();
	/* A status is the three digits where the grammar has them. */
	if (whole >= HTTP_STATUS_MIN &&
	    (size < CODE_AT + 3 || memcmp(buf, "HTTP/1.", strlen("HTTP/1.")) != 0 ||
	     (buf[CODE_AT] - '0') * 100 + (buf[CODE_AT + 1] - '0') * 10 +
	             (buf[CODE_AT + 2] - '0') !=
	         whole))
		abort();
	/*
	 * A response read in segments: each prefix the checker may see is undecided or decides as
	 * the whole does. Only prefixes the checker's buffer can hold.
	 */
	for (size_t k = 0; k < size && k <= HEALTH_RESPONSE_MAX; k++) {
		int part = health_http_status_parse(buf, k);

		if (part != -EAGAIN && part != whole)
			abort();
	}
	return 0;
}
