//go:build ignore

/* The constraint above is for the go tool only: without it a .c file in a
 * package that does not use cgo fails `go build`.  The library is compiled by
 * Build (build.go) with gcc, never by cgo. */

/*
 * capped.c — a PKCS#11 module that wraps a real one (SoftHSM2 by default) and
 * behaves like a shared, session-limited network HSM (e.g. a Trustway Proteccio):
 *
 *   - one session cap across all processes sharing the state file (env
 *     CAPPED_STATE, see capped_state.h); C_OpenSession beyond it fails with the
 *     configured refusal code (CKR_DEVICE_MEMORY like the Proteccio, or
 *     CKR_SESSION_COUNT);
 *   - fault injection (every k-th crypto call fails with CKR_DEVICE_ERROR),
 *     invalidation of every open session (epoch bump), token removal;
 *   - a per-call delay (a network HSM's round trip), slept outside every lock;
 *   - CKM_AES_CBC_PAD key wrapping where the real module lacks it
 *     (capped_cbcpad.h);
 *   - counters a test reads to prove what the client did.
 *
 * Build: gcc -shared -fPIC -O2 -o libcapped.so capped.c -Iinclude -ldl -lpthread
 *
 * Session handles given to the client are our own, never reused within a
 * process, and map to the real module's handles.  That is what lets an
 * invalidated handle keep failing with CKR_SESSION_HANDLE_INVALID even after
 * the real module has recycled its number for a new session.
 */
#define CK_PTR *
#define CK_DEFINE_FUNCTION(rt, name) __attribute__((visibility("default"))) rt name
#define CK_DECLARE_FUNCTION(rt, name) rt name
#define CK_DECLARE_FUNCTION_POINTER(rt, name) rt(*name)
#define CK_CALLBACK_FUNCTION(rt, name) rt(*name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

#include "capped_state.h"

#define DEFAULT_REAL_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define NBUCKET 256

struct sess {
	CK_SESSION_HANDLE h, real;
	CK_SLOT_ID slot;
	uint64_t epoch;    /* st->epoch when opened; a different epoch means dead */
	uint64_t gen;      /* init generation; a finalize in between voids the entry */
	unsigned inflight; /* calls using it now: the real close waits for them */
	int dead;
	struct sess *next;
};

/* mu guards everything below.  Real calls are made without it, except the
 * C_Initialize/C_Finalize pair and C_CloseSession of sessions we kill. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static void *real_lib;
static CK_FUNCTION_LIST_PTR real; /* set once, never changes while loaded */
static struct capped_state *st;
static char *st_path;
static struct proc_slot *my_slot;
static uint32_t my_pid;
static int initialized;
static uint64_t gen = 1, seen_epoch;
static CK_SESSION_HANDLE next_handle = 1;
static struct sess *tab[NBUCKET];

static CK_FUNCTION_LIST funcs;

static CK_RV load_real_locked(void)
{
	CK_C_GetFunctionList get;
	const char *path = getenv("CAPPED_REAL_MODULE");
	if (real != NULL)
		return CKR_OK;
	if (path == NULL || *path == '\0')
		path = DEFAULT_REAL_MODULE;
	real_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (real_lib == NULL) {
		fprintf(stderr, "capped: dlopen %s: %s\n", path, dlerror());
		return CKR_GENERAL_ERROR;
	}
	get = (CK_C_GetFunctionList)dlsym(real_lib, "C_GetFunctionList");
	if (get == NULL || get(&real) != CKR_OK || real == NULL ||
	    real->C_Initialize == funcs.C_Initialize) {
		/* The last test catches the real module's own C_* references being
		 * interposed by ours (this library loaded RTLD_GLOBAL): forwarding
		 * would recurse forever. */
		fprintf(stderr, "capped: %s has no usable function list\n", path);
		real = NULL;
		dlclose(real_lib);
		real_lib = NULL;
		return CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

static struct sess **bucket(CK_SESSION_HANDLE h)
{
	return &tab[h % NBUCKET];
}

static struct sess *find_locked(CK_SESSION_HANDLE h)
{
	for (struct sess *s = *bucket(h); s != NULL; s = s->next)
		if (s->h == h)
			return s;
	return NULL;
}

static void unlink_locked(struct sess *s)
{
	struct sess **pp = bucket(s->h);
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
}

/* finish_locked closes the real session and gives the cap slot back, unless a
 * C_Finalize since it was opened already did both. */
static CK_RV finish_locked(struct sess *s)
{
	CK_RV rv = CKR_OK;
	if (s->gen == gen) {
		rv = real->C_CloseSession(s->real);
		cap_release(st, my_slot);
	}
	free(s);
	return rv;
}

/* kill_locked: s is already unlinked.  Close now, or when the last in-flight
 * call leaves, so the real handle cannot be reused under a running call. */
static CK_RV kill_locked(struct sess *s)
{
	s->dead = 1;
	if (s->inflight == 0)
		return finish_locked(s);
	return CKR_OK;
}

/* sweep_locked notices an epoch bump or a token removal made by any process
 * and kills the sessions they void.  It runs at the start of every call, so a
 * process gives its dead sessions back to the cap at its next call. */
static void sweep_locked(void)
{
	uint64_t e = LD(st->epoch);
	int absent = !LD(st->token_present);
	if (e == seen_epoch && !absent)
		return;
	for (int i = 0; i < NBUCKET; i++) {
		struct sess **pp = &tab[i];
		while (*pp != NULL) {
			struct sess *s = *pp;
			if (absent || s->epoch != e) {
				*pp = s->next;
				ADD(st->invalidated, 1);
				kill_locked(s);
			} else {
				pp = &s->next;
			}
		}
	}
	seen_epoch = e;
}

static void forget_all_locked(void);

/* fork_reset_locked: in a forked child the inherited table and the count in
 * the shared state are the parent's.  Forget them, release nothing; the child
 * must C_Initialize again (PKCS#11 5.4) before using the module. */
static void fork_reset_locked(void)
{
	if (initialized && my_pid != (uint32_t)getpid()) {
		forget_all_locked();
		my_slot = NULL;
		gen++;
		initialized = 0;
	}
}

/* delay_locked is the round trip the next call pays; read under mu because a
 * C_Initialize of another state file may unmap st. */
static uint32_t delay_locked(void)
{
	return st != NULL ? LD(st->delay_us) : 0;
}

/* pause_us sleeps outside mu, so calls of different threads overlap as calls
 * to a network HSM do. */
static void pause_us(uint32_t us)
{
	struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
	while (us != 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static CK_RV enter_locked(int cls)
{
	fork_reset_locked();
	if (!initialized)
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	ADD(st->calls, 1);
	ADD(st->cls[cls], 1);
	sweep_locked();
	return CKR_OK;
}

/* enter_general: bookkeeping for calls that take no session handle. */
static CK_RV enter_general(int cls)
{
	CK_RV rv;
	uint32_t us;
	pthread_mutex_lock(&mu);
	rv = enter_locked(cls);
	us = rv == CKR_OK ? delay_locked() : 0;
	pthread_mutex_unlock(&mu);
	pause_us(us);
	return rv;
}

static int token_present(void)
{
	return LD(st->token_present) != 0;
}

/* enter_session resolves a client handle and pins it (inflight) for the call.
 * absent_rv is what the call reports while the token is removed. */
static CK_RV enter_session(int cls, CK_SESSION_HANDLE h, CK_RV absent_rv, struct sess **out)
{
	CK_RV rv;
	struct sess *s;
	uint32_t us;
	pthread_mutex_lock(&mu);
	rv = enter_locked(cls);
	us = rv == CKR_OK ? delay_locked() : 0;
	if (rv == CKR_OK && !token_present())
		rv = absent_rv;
	if (rv == CKR_OK) {
		s = find_locked(h);
		if (s == NULL)
			rv = CKR_SESSION_HANDLE_INVALID;
		else {
			s->inflight++;
			*out = s;
		}
	}
	pthread_mutex_unlock(&mu);
	pause_us(us);
	return rv;
}

static void leave_session(struct sess *s)
{
	pthread_mutex_lock(&mu);
	if (--s->inflight == 0 && s->dead)
		finish_locked(s);
	pthread_mutex_unlock(&mu);
}

/* maybe_fault decides whether this counted crypto call is the k-th. */
static CK_RV maybe_fault(void)
{
	uint32_t k = LD(st->fail_every_k);
	uint64_t n = ADD(st->crypto_seq, 1);
	if (k != 0 && n % k == 0) {
		ADD(st->faults, 1);
		return CKR_DEVICE_ERROR;
	}
	return CKR_OK;
}

/* ---- general ---------------------------------------------------------- */

CK_DEFINE_FUNCTION(CK_RV, C_GetFunctionList)(CK_FUNCTION_LIST_PTR_PTR pp)
{
	CK_RV rv;
	if (pp == NULL)
		return CKR_ARGUMENTS_BAD;
	/* Load the real module now so a bad CAPPED_REAL_MODULE fails at load. */
	pthread_mutex_lock(&mu);
	rv = load_real_locked();
	pthread_mutex_unlock(&mu);
	if (rv == CKR_OK)
		*pp = &funcs;
	return rv;
}

/* forget_all_locked frees the table without closing or releasing anything. */
static void forget_all_locked(void)
{
	for (int i = 0; i < NBUCKET; i++)
		while (tab[i] != NULL) {
			struct sess *s = tab[i];
			tab[i] = s->next;
			free(s);
		}
}

CK_DEFINE_FUNCTION(CK_RV, C_Initialize)(CK_VOID_PTR pInitArgs)
{
	const char *path = getenv("CAPPED_STATE");
	CK_RV rv;
	uint32_t us = 0;
	pthread_mutex_lock(&mu);
	rv = load_real_locked();
	if (rv != CKR_OK)
		goto out;
	fork_reset_locked();
	if (initialized) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	if (path == NULL || *path == '\0') {
		fprintf(stderr, "capped: CAPPED_STATE is not set\n");
		rv = CKR_GENERAL_ERROR;
		goto out;
	}
	/* Remap if the state file changed since the last initialisation, so one
	 * process (a test binary) can use a fresh HSM state per test. */
	if (st == NULL || strcmp(st_path, path) != 0) {
		if (st != NULL)
			munmap(st, STATE_FILE_SIZE);
		free(st_path);
		st_path = NULL;
		st = state_map(path);
		if (st == NULL) {
			rv = CKR_GENERAL_ERROR;
			goto out;
		}
		st_path = strdup(path);
	}
	rv = real->C_Initialize(pInitArgs);
	if (rv != CKR_OK)
		goto out;
	my_pid = (uint32_t)getpid();
	my_slot = proc_claim(st, my_pid);
	seen_epoch = LD(st->epoch);
	initialized = 1;
	ADD(st->calls, 1);
	ADD(st->cls[CLS_GENERAL], 1);
	us = delay_locked();
out:
	pthread_mutex_unlock(&mu);
	pause_us(us);
	return rv;
}

/* drop_all_locked forgets every session of this process (C_Finalize closes
 * them in the real module).  Pinned ones are freed when their call leaves;
 * the generation bump stops that from closing or releasing them again. */
static void drop_all_locked(void)
{
	for (int i = 0; i < NBUCKET; i++) {
		while (tab[i] != NULL) {
			struct sess *s = tab[i];
			tab[i] = s->next;
			cap_release(st, my_slot);
			s->gen = 0;
			s->dead = 1;
			if (s->inflight == 0)
				free(s);
		}
	}
}

CK_DEFINE_FUNCTION(CK_RV, C_Finalize)(CK_VOID_PTR pReserved)
{
	CK_RV rv;
	uint32_t us;
	pthread_mutex_lock(&mu);
	rv = enter_locked(CLS_GENERAL);
	us = rv == CKR_OK ? delay_locked() : 0;
	if (rv == CKR_OK) {
		rv = real->C_Finalize(pReserved);
		drop_all_locked();
		/* Whatever is still counted for us (sessions killed earlier whose
		 * real close still waits for an in-flight call, now voided by the
		 * generation bump) goes back to the cap here. */
		proc_release(st, my_slot, my_pid);
		my_slot = NULL;
		gen++;
		initialized = 0;
	}
	pthread_mutex_unlock(&mu);
	pause_us(us);
	return rv;
}

/* ---- sessions --------------------------------------------------------- */

CK_DEFINE_FUNCTION(CK_RV, C_OpenSession)(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession)
{
	CK_SESSION_HANDLE rh;
	struct sess *s;
	uint64_t epoch;
	CK_RV rv = enter_general(CLS_SESSION);
	if (rv != CKR_OK)
		return rv;
	if (phSession == NULL)
		return CKR_ARGUMENTS_BAD;
	if (!token_present())
		return CKR_TOKEN_NOT_PRESENT;
	/* Read before taking the slot: a bump racing the open voids the new
	 * session too, which is what "every session open at that moment" means. */
	epoch = LD(st->epoch);
	if (!cap_acquire(st, my_slot) &&
	    (reclaim_dead(st, my_pid) == 0 || !cap_acquire(st, my_slot))) {
		ADD(st->refusals, 1);
		return LD(st->refuse_code);
	}
	rv = real->C_OpenSession(slotID, flags, pApplication, Notify, &rh);
	if (rv != CKR_OK) {
		cap_release(st, my_slot);
		return rv;
	}
	s = calloc(1, sizeof(*s));
	pthread_mutex_lock(&mu);
	if (s == NULL || !initialized) { /* out of memory, or finalized meanwhile */
		if (initialized) {
			real->C_CloseSession(rh);
			cap_release(st, my_slot);
		}
		pthread_mutex_unlock(&mu);
		free(s);
		return s == NULL ? CKR_HOST_MEMORY : CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	s->h = next_handle++;
	s->real = rh;
	s->slot = slotID;
	s->epoch = epoch;
	s->gen = gen;
	s->next = *bucket(s->h);
	*bucket(s->h) = s;
	*phSession = s->h;
	pthread_mutex_unlock(&mu);
	return CKR_OK;
}

CK_DEFINE_FUNCTION(CK_RV, C_CloseSession)(CK_SESSION_HANDLE hSession)
{
	struct sess *s;
	CK_RV rv;
	uint32_t us;
	pthread_mutex_lock(&mu);
	rv = enter_locked(CLS_SESSION);
	us = rv == CKR_OK ? delay_locked() : 0;
	if (rv == CKR_OK && !token_present())
		rv = CKR_DEVICE_REMOVED;
	if (rv == CKR_OK) {
		s = find_locked(hSession);
		if (s == NULL)
			rv = CKR_SESSION_HANDLE_INVALID;
		else {
			unlink_locked(s);
			rv = kill_locked(s);
		}
	}
	pthread_mutex_unlock(&mu);
	pause_us(us);
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_CloseAllSessions)(CK_SLOT_ID slotID)
{
	/* Closed one by one, not forwarded: the real C_CloseAllSessions would
	 * also close sessions still pinned by an in-flight call. */
	CK_RV rv;
	uint32_t us;
	pthread_mutex_lock(&mu);
	rv = enter_locked(CLS_SESSION);
	us = rv == CKR_OK ? delay_locked() : 0;
	if (rv == CKR_OK) {
		for (int i = 0; i < NBUCKET; i++) {
			struct sess **pp = &tab[i];
			while (*pp != NULL) {
				struct sess *s = *pp;
				if (s->slot == slotID) {
					*pp = s->next;
					kill_locked(s);
				} else {
					pp = &s->next;
				}
			}
		}
		if (!token_present())
			rv = CKR_TOKEN_NOT_PRESENT;
	}
	pthread_mutex_unlock(&mu);
	pause_us(us);
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_Login)(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	struct sess *s;
	CK_RV rv = enter_session(CLS_SESSION, hSession, CKR_TOKEN_NOT_PRESENT, &s);
	if (rv != CKR_OK)
		return rv;
	rv = real->C_Login(s->real, userType, pPin, ulPinLen);
	leave_session(s);
	return rv;
}

/* Slot/token queries, crypto with injected faults, plain forwarders, and
 * the function list. */
#include "capped_fwd.h"

__attribute__((destructor)) static void capped_unload(void)
{
	/* Unloaded (dlclose) or exiting without C_Finalize: give this process's
	 * sessions back to the shared cap.  The real module is not called: it
	 * may already be torn down. */
	pthread_mutex_lock(&mu);
	fork_reset_locked();
	if (initialized) {
		forget_all_locked();
		proc_release(st, my_slot, my_pid);
		initialized = 0;
	}
	if (st != NULL)
		munmap(st, STATE_FILE_SIZE);
	st = NULL;
	free(st_path);
	st_path = NULL;
	if (real_lib != NULL)
		dlclose(real_lib);
	real_lib = NULL;
	real = NULL;
	pthread_mutex_unlock(&mu);
}
