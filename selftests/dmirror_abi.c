// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctl entry contract of the dmirror devices (lib/test_hmm.c,
 * dmirror_fops_unlocked_ioctl): every command validates its struct the same
 * way and bad input gets a clear errno. Run against both drivers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include <lib/test_hmm_uapi.h>

FIXTURE(abi)
{
	int fd;
	void *buf;
	size_t size;
};

FIXTURE_SETUP(abi)
{
	self->size = 4 * sysconf(_SC_PAGESIZE);
	self->fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (self->fd < 0)
		SKIP(return, "/dev/hmm_dmirror0: %s (driver not loaded)", strerror(errno));
	self->buf = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->buf, MAP_FAILED);
	memset(self->buf, 0x5a, self->size);
}

FIXTURE_TEARDOWN(abi)
{
	if (self->fd >= 0)
		close(self->fd);
	if (self->buf && self->buf != MAP_FAILED)
		munmap(self->buf, self->size);
}

static int dmirror_ioctl(int fd, unsigned long request, struct hmm_dmirror_cmd *cmd)
{
	return ioctl(fd, request, cmd) ? -errno : 0;
}

/* Every command of the uapi, for the checks that apply to all of them. */
static const unsigned long all_commands[] = {
	HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV,
	HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_EXCLUSIVE,
	HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_RELEASE, HMM_DMIRROR_FLAGS,
	HMM_DMIRROR_READ_UNLOCKED,
};

TEST_F(abi, npages_zero_is_einval)
{
	unsigned char out[4];
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)self->buf, .ptr = (uintptr_t)out, .npages = 0,
	};

	for (size_t i = 0; i < ARRAY_SIZE(all_commands); i++)
		EXPECT_EQ(-EINVAL, dmirror_ioctl(self->fd, all_commands[i], &cmd));
}

TEST_F(abi, unaligned_addr_is_einval)
{
	unsigned char out[4];
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)self->buf + 1, .ptr = (uintptr_t)out, .npages = 1,
	};

	for (size_t i = 0; i < ARRAY_SIZE(all_commands); i++)
		EXPECT_EQ(-EINVAL, dmirror_ioctl(self->fd, all_commands[i], &cmd));
}

TEST_F(abi, size_overflow_is_einval)
{
	unsigned char out[4];
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)self->buf, .ptr = (uintptr_t)out,
		.npages = UINT64_MAX / 4096,
	};

	EXPECT_EQ(-EINVAL, dmirror_ioctl(self->fd, HMM_DMIRROR_READ, &cmd));
	EXPECT_EQ(-EINVAL, dmirror_ioctl(self->fd, HMM_DMIRROR_SNAPSHOT, &cmd));
	EXPECT_EQ(-EINVAL, dmirror_ioctl(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd));
}

TEST_F(abi, unknown_command_is_einval)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)self->buf, .npages = 1,
	};

	/* A valid struct with an 'H' number the uapi does not define. */
	EXPECT_EQ(-EINVAL, dmirror_ioctl(self->fd, _IOWR('H', 0x3f, struct hmm_dmirror_cmd), &cmd));
}

TEST_F(abi, unreadable_cmd_is_efault)
{
	EXPECT_EQ(-EFAULT, dmirror_ioctl(self->fd, HMM_DMIRROR_READ, (void *)16));
}

TEST_F(abi, cpages_written_back_only_on_success)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)self->buf + 1, .npages = 1,
		.cpages = 12345, .faults = 678,
	};

	ASSERT_EQ(-EINVAL, dmirror_ioctl(self->fd, HMM_DMIRROR_READ, &cmd));
	EXPECT_EQ(12345, cmd.cpages);
	EXPECT_EQ(678, cmd.faults);
}

TEST_F(abi, read_counts_pages_and_one_fault_pass)
{
	unsigned long npages = self->size / sysconf(_SC_PAGESIZE);
	unsigned char *out = calloc(1, self->size);
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)self->buf, .ptr = (uintptr_t)out, .npages = npages,
	};

	ASSERT_NE(NULL, out);
	ASSERT_EQ(0, dmirror_ioctl(self->fd, HMM_DMIRROR_READ, &cmd));
	EXPECT_EQ(npages, cmd.cpages);
	EXPECT_EQ(1, cmd.faults);
	EXPECT_EQ(0, memcmp(out, self->buf, self->size));
	free(out);
}

TEST_HARNESS_MAIN
