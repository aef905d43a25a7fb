/* SPDX-License-Identifier: GPL-2.0-only */
/* The one version of maglevd and maglevctl (a release changes this line and nothing else). */
#ifndef MAGLEV_BASE_VERSION_H
#define MAGLEV_BASE_VERSION_H

#define MAGLEV_VERSION "0.1.0"

#endif
