/*
 * capped_fwd.h — the C_* functions that mostly forward: slot and token
 * queries (which hide a removed token), the single-part crypto calls that need
 * care when a fault is injected, key wrapping (with CKM_AES_CBC_PAD where
 * the real module lacks it, capped_cbcpad.h), the plain session-taking
 * forwarders, and the function list.  Included once, at the end of capped.c, whose helpers
 * (enter_general, enter_session, leave_session, maybe_fault) they use.
 */

/* ---- slots and tokens ------------------------------------------------- */

CK_DEFINE_FUNCTION(CK_RV, C_GetInfo)(CK_INFO_PTR pInfo)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	return rv != CKR_OK ? rv : real->C_GetInfo(pInfo);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetSlotList)(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	if (rv != CKR_OK)
		return rv;
	if (tokenPresent && !token_present()) {
		/* The removed token takes every slot with it: this is one HSM. */
		if (pulCount == NULL)
			return CKR_ARGUMENTS_BAD;
		*pulCount = 0;
		return CKR_OK;
	}
	return real->C_GetSlotList(tokenPresent, pSlotList, pulCount);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetSlotInfo)(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	if (rv != CKR_OK)
		return rv;
	rv = real->C_GetSlotInfo(slotID, pInfo);
	if (rv == CKR_OK && !token_present())
		pInfo->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_GetTokenInfo)(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	if (rv != CKR_OK)
		return rv;
	if (!token_present())
		return CKR_TOKEN_NOT_PRESENT;
	rv = real->C_GetTokenInfo(slotID, pInfo);
	if (rv == CKR_OK) {
		/* Report the shared HSM's numbers, as a network HSM would. */
		uint32_t cap = LD(st->cap);
		if (cap != 0)
			pInfo->ulMaxSessionCount = pInfo->ulMaxRwSessionCount = cap;
		pInfo->ulSessionCount = LD(st->open);
	}
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_GetMechanismList)(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pList, CK_ULONG_PTR pulCount)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	if (rv == CKR_OK && !token_present())
		rv = CKR_TOKEN_NOT_PRESENT;
	return rv != CKR_OK ? rv : real->C_GetMechanismList(slotID, pList, pulCount);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetMechanismInfo)(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	if (rv == CKR_OK && !token_present())
		rv = CKR_TOKEN_NOT_PRESENT;
	return rv != CKR_OK ? rv : real->C_GetMechanismInfo(slotID, type, pInfo);
}

CK_DEFINE_FUNCTION(CK_RV, C_InitToken)(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	if (rv == CKR_OK && !token_present())
		rv = CKR_TOKEN_NOT_PRESENT;
	return rv != CKR_OK ? rv : real->C_InitToken(slotID, pPin, ulPinLen, pLabel);
}

CK_DEFINE_FUNCTION(CK_RV, C_WaitForSlotEvent)(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
	CK_RV rv = enter_general(CLS_GENERAL);
	return rv != CKR_OK ? rv : real->C_WaitForSlotEvent(flags, pSlot, pReserved);
}

/* ---- single-part crypto with injected faults -------------------------- */

/* oneshot runs C_Encrypt/C_Decrypt/C_Sign (same shape).  A length query
 * (out == NULL) is never counted nor failed: it is not device work.  An
 * injected fault must still end the real operation, as a real failure would,
 * or the client's next *Init gets CKR_OPERATION_ACTIVE; so drain it. */
static CK_RV oneshot(CK_C_Encrypt fn, CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inLen, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	struct sess *s;
	CK_RV rv = enter_session(CLS_CRYPTO, h, CKR_DEVICE_REMOVED, &s);
	if (rv != CKR_OK)
		return rv;
	if (out != NULL && (rv = maybe_fault()) != CKR_OK) {
		CK_ULONG n = 0;
		if (fn(s->real, in, inLen, NULL, &n) == CKR_OK) {
			CK_BYTE_PTR buf = malloc(n ? n : 1);
			if (buf != NULL)
				fn(s->real, in, inLen, buf, &n);
			free(buf);
		}
	} else {
		rv = fn(s->real, in, inLen, out, outLen);
	}
	leave_session(s);
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_Encrypt)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen)
{
	return oneshot(real ? real->C_Encrypt : NULL, hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_Decrypt)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen)
{
	return oneshot(real ? real->C_Decrypt : NULL, hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_Sign)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	return oneshot(real ? real->C_Sign : NULL, hSession, pData, ulDataLen, pSignature, pulSignatureLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_Verify)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
	struct sess *s;
	CK_RV rv = enter_session(CLS_CRYPTO, hSession, CKR_DEVICE_REMOVED, &s);
	if (rv != CKR_OK)
		return rv;
	rv = maybe_fault();
	if (rv != CKR_OK) /* still run it: that ends the operation */
		real->C_Verify(s->real, pData, ulDataLen, pSignature, ulSignatureLen);
	else
		rv = real->C_Verify(s->real, pData, ulDataLen, pSignature, ulSignatureLen);
	leave_session(s);
	return rv;
}

#include "capped_cbcpad.h"

CK_DEFINE_FUNCTION(CK_RV, C_WrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen)
{
	struct sess *s;
	CK_RV rv = enter_session(CLS_CRYPTO, hSession, CKR_DEVICE_REMOVED, &s);
	if (rv != CKR_OK)
		return rv;
	if (pWrappedKey == NULL || (rv = maybe_fault()) == CKR_OK) {
		rv = real->C_WrapKey(s->real, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen);
		if (rv == CKR_MECHANISM_INVALID && pMechanism != NULL && pMechanism->mechanism == CKM_AES_CBC_PAD)
			rv = cbcpad_wrap(s->real, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen);
	}
	leave_session(s);
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_UnwrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	struct sess *s;
	CK_RV rv = enter_session(CLS_CRYPTO, hSession, CKR_DEVICE_REMOVED, &s);
	if (rv != CKR_OK)
		return rv;
	if ((rv = maybe_fault()) == CKR_OK) {
		rv = real->C_UnwrapKey(s->real, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulAttributeCount, phKey);
		if (rv == CKR_MECHANISM_INVALID && pMechanism != NULL && pMechanism->mechanism == CKM_AES_CBC_PAD)
			rv = cbcpad_unwrap(s->real, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulAttributeCount, phKey);
	}
	leave_session(s);
	return rv;
}

/* ---- plain forwarders ------------------------------------------------ */

/*
 * FWD(name, class, fault, (params), args...) defines C_<name>: resolve and pin
 * the client's handle (dead → CKR_SESSION_HANDLE_INVALID, token removed →
 * CKR_DEVICE_REMOVED), count the call in its class, inject a fault if `fault`
 * and this is the k-th counted crypto call, else forward with the real handle.
 */
#define FWD(name, cls, fault, params, ...)                                   \
	CK_DEFINE_FUNCTION(CK_RV, name) params                               \
	{                                                                    \
		struct sess *s;                                              \
		CK_RV rv = enter_session(cls, hSession, CKR_DEVICE_REMOVED, &s); \
		if (rv != CKR_OK)                                            \
			return rv;                                           \
		if (!(fault) || (rv = maybe_fault()) == CKR_OK)              \
			rv = real->name(s->real, ##__VA_ARGS__);             \
		leave_session(s);                                            \
		return rv;                                                   \
	}

#define H CK_SESSION_HANDLE hSession
#define S CLS_SESSION
#define O CLS_OBJECT
#define C CLS_CRYPTO

/* session / login */
FWD(C_InitPIN, S, 0, (H, CK_UTF8CHAR_PTR pin, CK_ULONG len), pin, len)
FWD(C_SetPIN, S, 0, (H, CK_UTF8CHAR_PTR o, CK_ULONG ol, CK_UTF8CHAR_PTR n, CK_ULONG nl), o, ol, n, nl)
FWD(C_GetSessionInfo, S, 0, (H, CK_SESSION_INFO_PTR info), info)
FWD(C_GetOperationState, S, 0, (H, CK_BYTE_PTR st_, CK_ULONG_PTR len), st_, len)
FWD(C_SetOperationState, S, 0, (H, CK_BYTE_PTR st_, CK_ULONG len, CK_OBJECT_HANDLE ek, CK_OBJECT_HANDLE ak), st_, len, ek, ak)
FWD(C_Logout, S, 0, (H))
FWD(C_GetFunctionStatus, S, 0, (H))
FWD(C_CancelFunction, S, 0, (H))

/* objects */
FWD(C_CreateObject, O, 0, (H, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR ph), t, n, ph)
FWD(C_CopyObject, O, 0, (H, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR ph), o, t, n, ph)
FWD(C_DestroyObject, O, 0, (H, CK_OBJECT_HANDLE o), o)
FWD(C_GetObjectSize, O, 0, (H, CK_OBJECT_HANDLE o, CK_ULONG_PTR sz), o, sz)
FWD(C_GetAttributeValue, O, 0, (H, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), o, t, n)
FWD(C_SetAttributeValue, O, 0, (H, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), o, t, n)
FWD(C_FindObjectsInit, O, 0, (H, CK_ATTRIBUTE_PTR t, CK_ULONG n), t, n)
FWD(C_FindObjects, O, 0, (H, CK_OBJECT_HANDLE_PTR ph, CK_ULONG max, CK_ULONG_PTR n), ph, max, n)
FWD(C_FindObjectsFinal, O, 0, (H))

/* crypto: the rest of the fault-injected set (C_Encrypt, C_Decrypt, C_Sign,
 * C_Verify and C_WrapKey are above because they must not fail length queries;
 * C_UnwrapKey because it may emulate CKM_AES_CBC_PAD) */
FWD(C_EncryptInit, C, 1, (H, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), m, k)
FWD(C_DecryptInit, C, 1, (H, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), m, k)
FWD(C_SignInit, C, 1, (H, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), m, k)
FWD(C_VerifyInit, C, 1, (H, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), m, k)
FWD(C_GenerateRandom, C, 1, (H, CK_BYTE_PTR p, CK_ULONG n), p, n)
FWD(C_GenerateKey, C, 1, (H, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR ph), m, t, n, ph)

/* crypto: forwarded as is */
FWD(C_EncryptUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_EncryptFinal, C, 0, (H, CK_BYTE_PTR o, CK_ULONG_PTR ol), o, ol)
FWD(C_DecryptUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_DecryptFinal, C, 0, (H, CK_BYTE_PTR o, CK_ULONG_PTR ol), o, ol)
FWD(C_DigestInit, C, 0, (H, CK_MECHANISM_PTR m), m)
FWD(C_Digest, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_DigestUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl), p, pl)
FWD(C_DigestKey, C, 0, (H, CK_OBJECT_HANDLE k), k)
FWD(C_DigestFinal, C, 0, (H, CK_BYTE_PTR o, CK_ULONG_PTR ol), o, ol)
FWD(C_SignUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl), p, pl)
FWD(C_SignFinal, C, 0, (H, CK_BYTE_PTR o, CK_ULONG_PTR ol), o, ol)
FWD(C_SignRecoverInit, C, 0, (H, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), m, k)
FWD(C_SignRecover, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_VerifyUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl), p, pl)
FWD(C_VerifyFinal, C, 0, (H, CK_BYTE_PTR sg, CK_ULONG sl), sg, sl)
FWD(C_VerifyRecoverInit, C, 0, (H, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), m, k)
FWD(C_VerifyRecover, C, 0, (H, CK_BYTE_PTR sg, CK_ULONG sl, CK_BYTE_PTR o, CK_ULONG_PTR ol), sg, sl, o, ol)
FWD(C_DigestEncryptUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_DecryptDigestUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_SignEncryptUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_DecryptVerifyUpdate, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR o, CK_ULONG_PTR ol), p, pl, o, ol)
FWD(C_GenerateKeyPair, C, 0, (H, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt, CK_ULONG pn, CK_ATTRIBUTE_PTR vt, CK_ULONG vn, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv), m, pt, pn, vt, vn, pub, priv)
FWD(C_DeriveKey, C, 0, (H, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE bk, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR ph), m, bk, t, n, ph)
FWD(C_SeedRandom, C, 0, (H, CK_BYTE_PTR p, CK_ULONG pl), p, pl)

#undef H
#undef S
#undef O
#undef C
#undef FWD

/* The list, in pkcs11f.h order: the header generates it, so it cannot drift. */
static CK_FUNCTION_LIST funcs = {
	{2, 40},
#define CK_PKCS11_FUNCTION_INFO(name) name,
#include "pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO
};
