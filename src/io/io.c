/* Names and help texts of the packet I/O counters, from the IO_COUNTERS list. */
#include "io/io.h"

const char *const io_counter_name[IO_CTR_MAX] = {
#define IO_COUNTER_NAME(id, name, help) [IO_CTR_##id] = name,
	IO_COUNTERS(IO_COUNTER_NAME)
#undef IO_COUNTER_NAME
};

const char *const io_counter_help[IO_CTR_MAX] = {
#define IO_COUNTER_HELP(id, name, help) [IO_CTR_##id] = help,
	IO_COUNTERS(IO_COUNTER_HELP)
#undef IO_COUNTER_HELP
};
