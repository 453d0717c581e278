/*
 * capped_state.h — the cross-process state of the capped PKCS#11 test module.
 *
 * One small fixed struct lives in a file (env CAPPED_STATE) that every process
 * using the module maps MAP_SHARED.  It is the "HSM": its session count is what
 * the cap is enforced against, whichever process opened the sessions, and a test
 * process can flip knobs in it while another process is using the module.
 *
 * Every field is a fixed-width uint32/uint64 at a documented offset, accessed only
 * with __atomic builtins here and sync/atomic in Go (control.go mirrors the
 * offsets; TestLayout checks them).  No lock is needed on the hot path: the cap
 * is a CAS loop on `open`.  flock is used only to make first-time initialisation
 * of a fresh file atomic between processes.
 *
 *   off   type  field          meaning
 *   0x00  u32   magic          STATE_MAGIC once initialised
 *   0x04  u32   version        STATE_VERSION
 *   0x08  u32   cap            max sessions open at once, all processes (0 = none)
 *   0x0C  u32   refuse_code    CK_RV returned by C_OpenSession beyond the cap
 *   0x10  u32   open           sessions open now, all processes
 *   0x14  u32   peak           highest `open` seen
 *   0x18  u32   fail_every_k   fail every k-th counted crypto call (0 = off)
 *   0x1C  u32   token_present  1 present, 0 removed
 *   0x20  u64   epoch          bump to invalidate every session open now
 *   0x28  u64   crypto_seq     counted crypto calls (drives fail_every_k)
 *   0x30  u64   calls          every C_* call through the module
 *   0x38  u64   class[4]       calls by class: general, session, object, crypto
 *   0x58  u64   refusals       C_OpenSession refused by the cap
 *   0x60  u64   faults         injected CKR_DEVICE_ERRORs
 *   0x68  u64   invalidated    sessions killed by an epoch bump or token removal
 *   0x70  u64   reclaimed      sessions taken back from dead processes
 *   0x78  u32   delay_us       every call sleeps this long first, outside any lock
 *                               (a network HSM's round trip; 0 = none)
 *   0x7C  u32   reserved
 *   0x80  {u32 pid, u32 count}[64]  per-process open counts (crash reclamation)
 */
#ifndef CAPPED_STATE_H
#define CAPPED_STATE_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAGIC 0x50414343u /* "CCAP" little-endian */
#define STATE_VERSION 1u
#define STATE_PROCS 64
#define STATE_FILE_SIZE 4096 /* one page; the struct uses 0x280 bytes */
#define PID_RECLAIMING 0xFFFFFFFFu

enum { CLS_GENERAL, CLS_SESSION, CLS_OBJECT, CLS_CRYPTO, CLS_N };

struct proc_slot {
	uint32_t pid;
	uint32_t count;
};

struct capped_state {
	uint32_t magic, version, cap, refuse_code;
	uint32_t open, peak, fail_every_k, token_present;
	uint64_t epoch, crypto_seq, calls;
	uint64_t cls[CLS_N];
	uint64_t refusals, faults, invalidated, reclaimed;
	uint32_t delay_us, reserved;
	struct proc_slot procs[STATE_PROCS];
};

_Static_assert(offsetof(struct capped_state, epoch) == 0x20, "layout");
_Static_assert(offsetof(struct capped_state, cls) == 0x38, "layout");
_Static_assert(offsetof(struct capped_state, refusals) == 0x58, "layout");
_Static_assert(offsetof(struct capped_state, delay_us) == 0x78, "layout");
_Static_assert(offsetof(struct capped_state, procs) == 0x80, "layout");
_Static_assert(sizeof(struct capped_state) == 0x280, "layout");

#define LD(p) __atomic_load_n(&(p), __ATOMIC_SEQ_CST)
#define ST(p, v) __atomic_store_n(&(p), (v), __ATOMIC_SEQ_CST)
#define ADD(p, v) __atomic_add_fetch(&(p), (v), __ATOMIC_SEQ_CST)
#define SUB(p, v) __atomic_sub_fetch(&(p), (v), __ATOMIC_SEQ_CST)
#define CAS(p, exp, v) \
	__atomic_compare_exchange_n(&(p), (exp), (v), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

static unsigned long env_ulong(const char *name, unsigned long def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;
	if (v == NULL || *v == '\0')
		return def;
	n = strtoul(v, &end, 0);
	return *end == '\0' ? n : def;
}

/* CAPPED_REFUSE: a name the Proteccio-style tests care about, or a number. */
static uint32_t env_refuse_code(void)
{
	const char *v = getenv("CAPPED_REFUSE");
	if (v == NULL || *v == '\0' || strcmp(v, "CKR_DEVICE_MEMORY") == 0)
		return 0x31;
	if (strcmp(v, "CKR_SESSION_COUNT") == 0)
		return 0xB1;
	return (uint32_t)env_ulong("CAPPED_REFUSE", 0x31);
}

/*
 * state_map maps (creating if needed) the state file.  A fresh or foreign file
 * is initialised from the env defaults under an exclusive flock, so two
 * processes starting together cannot both initialise it.
 */
static struct capped_state *state_map(const char *path)
{
	struct capped_state *st;
	struct stat sb;
	void *p;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) {
		fprintf(stderr, "capped: open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (flock(fd, LOCK_EX) != 0 || fstat(fd, &sb) != 0 ||
	    (sb.st_size < STATE_FILE_SIZE && ftruncate(fd, STATE_FILE_SIZE) != 0)) {
		fprintf(stderr, "capped: prepare %s: %s\n", path, strerror(errno));
		close(fd);
		return NULL;
	}
	p = mmap(NULL, STATE_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "capped: mmap %s: %s\n", path, strerror(errno));
		close(fd);
		return NULL;
	}
	st = p;
	if (LD(st->magic) != STATE_MAGIC || LD(st->version) != STATE_VERSION) {
		memset(st, 0, sizeof(*st));
		ST(st->cap, (uint32_t)env_ulong("CAPPED_MAX_SESSIONS", 0));
		ST(st->refuse_code, env_refuse_code());
		ST(st->fail_every_k, (uint32_t)env_ulong("CAPPED_FAIL_EVERY_K", 0));
		ST(st->token_present, env_ulong("CAPPED_TOKEN_PRESENT", 1) ? 1u : 0u);
		ST(st->delay_us, (uint32_t)env_ulong("CAPPED_DELAY_US", 0));
		ST(st->version, STATE_VERSION);
		ST(st->magic, STATE_MAGIC); /* last: marks the struct complete */
	}
	flock(fd, LOCK_UN);
	close(fd); /* the mapping keeps the file alive */
	return st;
}

/* proc_dead: the process owning a slot is gone (same PID namespace assumed). */
static int proc_dead(uint32_t pid)
{
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/*
 * reclaim_slot gives back a slot's sessions.  The pid CAS to PID_RECLAIMING
 * makes exactly one reclaimer win, so a dead process's count is subtracted once.
 */
static uint32_t reclaim_slot(struct capped_state *st, struct proc_slot *ps, uint32_t pid)
{
	uint32_t exp = pid, n;
	if (!CAS(ps->pid, &exp, PID_RECLAIMING))
		return 0;
	n = __atomic_exchange_n(&ps->count, 0, __ATOMIC_SEQ_CST);
	if (n) {
		SUB(st->open, n);
		ADD(st->reclaimed, n);
	}
	ST(ps->pid, 0);
	return n;
}

/* reclaim_dead is called when the cap refuses: sessions of crashed processes
 * are the only way the count can leak, so look for them only then. */
static uint32_t reclaim_dead(struct capped_state *st, uint32_t self)
{
	uint32_t total = 0;
	for (int i = 0; i < STATE_PROCS; i++) {
		uint32_t pid = LD(st->procs[i].pid);
		if (pid != 0 && pid != PID_RECLAIMING && pid != self && proc_dead(pid))
			total += reclaim_slot(st, &st->procs[i], pid);
	}
	return total;
}

/* proc_claim finds this process's slot.  A slot already carrying our pid is a
 * leftover of a dead process whose pid was reused: reclaim it first.  NULL
 * (table full) only disables crash reclamation for this process. */
static struct proc_slot *proc_claim(struct capped_state *st, uint32_t self)
{
	for (int i = 0; i < STATE_PROCS; i++)
		if (LD(st->procs[i].pid) == self)
			reclaim_slot(st, &st->procs[i], self);
	for (int i = 0; i < STATE_PROCS; i++) {
		uint32_t exp = 0;
		if (CAS(st->procs[i].pid, &exp, self))
			return &st->procs[i];
	}
	return NULL;
}

/* proc_release drops whatever this process still counts (C_Finalize, unload). */
static void proc_release(struct capped_state *st, struct proc_slot *ps, uint32_t self)
{
	if (ps != NULL)
		reclaim_slot(st, ps, self);
}

/* cap_acquire takes one session slot if the cap allows it and records the peak. */
static int cap_acquire(struct capped_state *st, struct proc_slot *ps)
{
	uint32_t cur = LD(st->open), peak;
	do {
		uint32_t cap = LD(st->cap);
		if (cap != 0 && cur >= cap)
			return 0;
	} while (!CAS(st->open, &cur, cur + 1));
	if (ps != NULL)
		ADD(ps->count, 1);
	peak = LD(st->peak);
	while (cur + 1 > peak && !CAS(st->peak, &peak, cur + 1))
		;
	return 1;
}

static void cap_release(struct capped_state *st, struct proc_slot *ps)
{
	if (ps != NULL)
		SUB(ps->count, 1);
	SUB(st->open, 1);
}

#endif
