// The system's OpenSSL libcrypto (Debian's libssl-dev), for the two primitives swift-crypto does
// not offer: Poly1305 (chacha20-poly1305@openssh.com) and constant-time modular exponentiation
// (finite-field Diffie-Hellman). See docs/architecture.md, "SSH engine".
#include <openssl/evp.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/crypto.h>
