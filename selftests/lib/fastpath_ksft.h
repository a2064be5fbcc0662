/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by fastpath's kselftests.  scripts/ksft installs this
 * directory next to the targets (tools/testing/selftests/fastpath/lib).
 */
#ifndef FASTPATH_KSFT_H
#define FASTPATH_KSFT_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Reads the first line of a file, without its newline and trailing spaces. */
static inline int fp_read_str(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	if (!fgets(buf, len, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	/* sysfs pads some attributes (serial, model) with spaces */
	for (size_t n = strlen(buf); n && buf[n - 1] == ' '; n--)
		buf[n - 1] = '\0';
	return 0;
}

/*
 * Finds the block device of the first namespace of the NVMe controller with
 * this serial (scripts/vng names them fastpath0, fastpath1, ...).
 */
static inline int fp_find_nvme_ns(const char *serial, char *dev, size_t len)
{
	char path[512], val[128];
	struct dirent *de;
	DIR *d = opendir("/sys/class/nvme");
	int ret = -ENODEV;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/nvme/%s/serial", de->d_name);
		if (fp_read_str(path, val, sizeof(val)) || strcmp(val, serial))
			continue;
		snprintf(dev, len, "/dev/%sn1", de->d_name);
		ret = 0;
		break;
	}
	closedir(d);
	return ret;
}

#endif /* FASTPATH_KSFT_H */
