/*
 * capped_cbcpad.h — CKM_AES_CBC_PAD key wrapping over a module without it.
 *
 * SoftHSM 2.6 answers CKR_MECHANISM_INVALID to C_WrapKey and C_UnwrapKey with
 * CKM_AES_CBC_PAD, which network HSMs (a Proteccio) offer and Barbican 15's
 * p11_crypto uses for its project KEKs.  Both are built here from what the
 * real module does have, with the real keys, so the results are those of a
 * module with the mechanism:
 *
 *   wrap    for a key whose value is a whole number of AES blocks, the CBC
 *           wrapping (which SoftHSM does) followed by one block more: sixteen
 *           0x10 bytes encrypted in CBC after it.  Other lengths stay
 *           CKR_MECHANISM_INVALID.
 *   unwrap  C_Decrypt with CKM_AES_CBC, the padding checked and removed,
 *           then C_CreateObject from the caller's template and the value
 *           (SoftHSM cannot unwrap with CBC either).
 *
 * The wrapping key needs CKA_ENCRYPT / CKA_DECRYPT besides CKA_WRAP /
 * CKA_UNWRAP, as Barbican's master KEK has.  Used only after the real module
 * refused the mechanism itself.
 */

#define AES_BLOCK 16

static int cbcpad_param_ok(CK_MECHANISM_PTR m)
{
	return m->pParameter != NULL && m->ulParameterLen == AES_BLOCK;
}

static CK_RV cbcpad_wrap(CK_SESSION_HANDLE rs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wk, CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
	CK_MECHANISM cbc = {CKM_AES_CBC, m->pParameter, m->ulParameterLen}, last;
	CK_ULONG vlen = 0, n = 0, one = AES_BLOCK;
	CK_ATTRIBUTE a = {CKA_VALUE_LEN, &vlen, sizeof(vlen)};
	CK_BYTE pad[AES_BLOCK];
	CK_RV rv;

	if (!cbcpad_param_ok(m))
		return CKR_MECHANISM_PARAM_INVALID;
	/* CBC wrapping zero-fills a partial block; CBC_PAD does not. */
	rv = real->C_GetAttributeValue(rs, k, &a, 1);
	if (rv != CKR_OK || vlen == 0 || vlen % AES_BLOCK != 0)
		return CKR_MECHANISM_INVALID;
	rv = real->C_WrapKey(rs, &cbc, wk, k, NULL, &n);
	if (rv != CKR_OK)
		return rv;
	if (out == NULL) {
		*outLen = n + AES_BLOCK;
		return CKR_OK;
	}
	if (*outLen < n + AES_BLOCK) {
		*outLen = n + AES_BLOCK;
		return CKR_BUFFER_TOO_SMALL;
	}
	rv = real->C_WrapKey(rs, &cbc, wk, k, out, &n);
	if (rv != CKR_OK)
		return rv;
	memset(pad, AES_BLOCK, sizeof(pad));
	last = (CK_MECHANISM){CKM_AES_CBC, out + n - AES_BLOCK, AES_BLOCK};
	rv = real->C_EncryptInit(rs, &last, wk);
	if (rv == CKR_OK)
		rv = real->C_Encrypt(rs, pad, AES_BLOCK, out + n, &one);
	if (rv == CKR_OK)
		*outLen = n + AES_BLOCK;
	return rv;
}

static CK_RV cbcpad_unwrap(CK_SESSION_HANDLE rs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE uk, CK_BYTE_PTR w, CK_ULONG wl, CK_ATTRIBUTE_PTR t, CK_ULONG tn, CK_OBJECT_HANDLE_PTR ph)
{
	CK_MECHANISM dec = {CKM_AES_CBC, m->pParameter, m->ulParameterLen};
	CK_ATTRIBUTE *tmpl;
	CK_BYTE *val;
	CK_ULONG vl = wl, n = 0, p;
	CK_RV rv;

	if (!cbcpad_param_ok(m))
		return CKR_MECHANISM_PARAM_INVALID;
	if (wl < AES_BLOCK || wl % AES_BLOCK != 0)
		return CKR_WRAPPED_KEY_LEN_RANGE;
	val = malloc(wl);
	tmpl = calloc(tn + 1, sizeof(*tmpl));
	if (val == NULL || tmpl == NULL) {
		free(val);
		free(tmpl);
		return CKR_HOST_MEMORY;
	}
	rv = real->C_DecryptInit(rs, &dec, uk);
	if (rv == CKR_OK)
		rv = real->C_Decrypt(rs, w, wl, val, &vl);
	/* The padding is checked here: SoftHSM's CBC_PAD decryption reports
	 * bad padding as CKR_GENERAL_ERROR. */
	p = rv == CKR_OK && vl == wl ? val[wl - 1] : 0;
	if (rv == CKR_OK && (p == 0 || p > AES_BLOCK))
		rv = CKR_WRAPPED_KEY_INVALID;
	for (CK_ULONG i = wl - p; rv == CKR_OK && i < wl; i++)
		if (val[i] != p)
			rv = CKR_WRAPPED_KEY_INVALID;
	if (rv == CKR_OK) {
		/* The caller's template plus the value; a key's length follows
		 * from its value, so CKA_VALUE_LEN is left out. */
		for (CK_ULONG i = 0; i < tn; i++)
			if (t[i].type != CKA_VALUE_LEN)
				tmpl[n++] = t[i];
		tmpl[n++] = (CK_ATTRIBUTE){CKA_VALUE, val, wl - p};
		rv = real->C_CreateObject(rs, tmpl, n, ph);
	}
	memset(val, 0, wl);
	free(val);
	free(tmpl);
	return rv;
}
