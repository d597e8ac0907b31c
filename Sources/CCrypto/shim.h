#ifndef QUICKSCAN_CCRYPTO_SHIM_H
#define QUICKSCAN_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

/// OPENSSL_VERSION_NUMBER is a macro; exposed as a function for Swift.
static inline unsigned long quickscan_openssl_version_number(void) { return OPENSSL_VERSION_NUMBER; }
#endif
